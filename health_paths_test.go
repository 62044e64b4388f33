package main

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/go-logr/logr"
)

// healthPathRef matches a health path as the docs, the alerts and the
// manifests write it: /healthz or /readyz, and a check name after it.
var healthPathRef = regexp.MustCompile(`/(healthz|readyz)(/[a-z][a-z0-9-]*)?`)

// namedHealthPaths returns every health path that a document (README,
// docs/, CHANGELOG), an alert (config/prometheus) or a manifest (config/,
// its test fixtures in config/testdata included) names, with the files
// that name it, plus /readyz/<check> for each readiness check (the README
// names them by pattern). Each must answer on every server layout.
func namedHealthPaths(t *testing.T) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	add := func(path, file string) {
		if !slices.Contains(found[path], file) {
			found[path] = append(found[path], file)
		}
	}
	scan := func(file string) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range healthPathRef.FindAllString(string(data), -1) {
			add(m, file)
		}
	}
	scan("README.md")
	scan("CHANGELOG.md")
	for _, root := range []string{"docs", "config"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch filepath.Ext(path) {
			case ".md", ".yaml", ".yml", ".json":
				scan(path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, name := range readyzChecks {
		add("/readyz/"+name, "health.go")
	}
	return found
}

// TestNamedHealthPathsAreKnown: the collector finds what the runbook and
// the alerts name, and every path it finds is one the attacher serves, so
// a typo in a document fails here rather than at 3 a.m.
func TestNamedHealthPathsAreKnown(t *testing.T) {
	g := NewWithT(t)
	paths := namedHealthPaths(t)
	g.Expect(paths).To(HaveKey("/readyz/informers"))
	g.Expect(paths["/readyz/csi-driver"]).To(ContainElement(filepath.Join("docs", "runbook.md")))
	served := append([]string{"/healthz", "/readyz"}, startupHealthzPaths...)
	for _, name := range readyzChecks {
		served = append(served, "/readyz/"+name)
	}
	for path, files := range paths {
		g.Expect(served).To(ContainElement(path), "%s, named in %v, is no path the attacher serves", path, files)
	}
}

// TestStartupServerAnswersEveryNamedPath: while the attacher waits for its
// driver, the probe address already answers every named health path: the
// liveness ones ok, the readiness ones 503 with the reason.
func TestStartupServerAnswersEveryNamedPath(t *testing.T) {
	g := NewWithT(t)
	addr := freeAddr(t)
	p, err := serveStartupProbes(addr, "unix:///csi/csi.sock", logr.Discard())
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Stop()
	for path, files := range namedHealthPaths(t) {
		code, body, err := getURL("http://" + addr + path)
		g.Expect(err).NotTo(HaveOccurred())
		if strings.HasPrefix(path, "/healthz") {
			g.Expect(code).To(Equal(http.StatusOK), "%s (named in %v): %s", path, files, body)
		} else {
			g.Expect(code).To(Equal(http.StatusServiceUnavailable), "%s (named in %v): %s", path, files, body)
			g.Expect(body).To(ContainSubstring("unix:///csi/csi.sock"), path)
		}
	}
}
