package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// architectureDoc is the map of the code: each rule and the file that holds
// it. A move that leaves the map pointing at a file that is gone fails here,
// so the map stays true.
const architectureDoc = "docs/architecture.md"

var goIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// architectureRef is one name the map gives: a path (file or directory,
// relative to the repository root) or a Go identifier the file before it
// must hold.
type architectureRef struct {
	line  int
	path  string // the path checked, resolved
	ident string // set for an identifier: it must occur in path
}

// architectureRefs parses the backticked names in the rows of the map's
// tables and the first column of its package list. In a cell, a bare file
// name (`wake.go`) lives in the directory of the path before it, or at the
// root when nothing came before; an identifier (`retryPolicy`) must occur in
// the Go file before it. Flags (`--timeout`) and URL paths (`/readyz`) are
// not files and are skipped.
func architectureRefs(doc string) []architectureRef {
	var refs []architectureRef
	inPackages, inBlock := false, false
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		switch {
		case strings.HasPrefix(line, "## "):
			inPackages = strings.TrimSpace(line) == "## Packages"
			continue
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
			continue
		case inPackages && inBlock:
			fields := strings.Fields(line)
			if len(fields) > 0 {
				p := strings.TrimSuffix(fields[0], ",")
				refs = append(refs, architectureRef{line: n, path: strings.TrimSuffix(p, "/")})
			}
			continue
		case !strings.HasPrefix(line, "|"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for _, cell := range cells {
			prev := "" // the last path named in this cell
			for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
				name := strings.TrimSpace(m[1])
				switch {
				case name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "/"):
				case strings.Contains(name, "/"):
					prev = strings.TrimSuffix(name, "/")
					refs = append(refs, architectureRef{line: n, path: prev})
				case strings.HasSuffix(name, ".go"):
					dir := prev
					if strings.HasSuffix(dir, ".go") {
						dir = filepath.Dir(dir)
					}
					prev = filepath.Join(dir, name)
					refs = append(refs, architectureRef{line: n, path: prev})
				case goIdent.MatchString(name) && strings.HasSuffix(prev, ".go"):
					refs = append(refs, architectureRef{line: n, path: prev, ident: name})
				}
			}
		}
	}
	return refs
}

func TestArchitectureRefsParse(t *testing.T) {
	doc := strings.Join([]string{
		"| Rule | File |",
		"|---|---|",
		"| a | `controllers/volumeattachment/limits.go`, `wake.go` |",
		"| b | `internal/leader` (`lock.go`), `--max-inflight`, `/readyz` |",
		"| c | `health.go`, `internal/x/y.go` (`retryPolicy`) |",
		"## Packages",
		"```",
		"controllers/                  the wiring",
		"internal/leader, leaderhealth Lease lock",
		"```",
	}, "\n")
	want := []architectureRef{
		{line: 3, path: "controllers/volumeattachment/limits.go"},
		{line: 3, path: "controllers/volumeattachment/wake.go"},
		{line: 4, path: "internal/leader"},
		{line: 4, path: "internal/leader/lock.go"},
		{line: 5, path: "health.go"},
		{line: 5, path: "internal/x/y.go"},
		{line: 5, path: "internal/x/y.go", ident: "retryPolicy"},
		{line: 8, path: "controllers"},
		{line: 9, path: "internal/leader"},
	}
	got := architectureRefs(doc)
	if len(got) != len(want) {
		t.Fatalf("parsed %d names, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("name %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestArchitectureMapNamesFilesThatExist fails when docs/architecture.md
// names a file or directory that is gone, or an identifier its file no
// longer holds.
func TestArchitectureMapNamesFilesThatExist(t *testing.T) {
	doc, err := os.ReadFile(architectureDoc)
	if err != nil {
		t.Fatal(err)
	}
	refs := architectureRefs(string(doc))
	if len(refs) < 40 {
		t.Fatalf("%s: parsed only %d names; has the table's layout changed?", architectureDoc, len(refs))
	}
	for _, r := range refs {
		if r.ident == "" {
			if _, err := os.Stat(r.path); err != nil {
				t.Errorf("%s:%d names %s, which is gone", architectureDoc, r.line, r.path)
			}
			continue
		}
		src, err := os.ReadFile(r.path)
		if err != nil {
			t.Errorf("%s:%d: %v", architectureDoc, r.line, err)
			continue
		}
		if !regexp.MustCompile(`\b` + r.ident + `\b`).Match(src) {
			t.Errorf("%s:%d names %s in %s, which no longer holds it", architectureDoc, r.line, r.ident, r.path)
		}
	}
}

// maxFileLines is the longest a production (non-test) Go file may be: a
// longer one holds more than one concern and is split by concern, each
// file named for what it holds.
const maxFileLines = 500

func TestNoProductionFileOverMaxLines(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := strings.Count(string(src), "\n"); n > maxFileLines {
			t.Errorf("%s has %d lines, more than %d: split it by concern", path, n, maxFileLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
