package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/options"
)

// referenceDefaults are the reference attacher's defaults (external-attacher
// v4.12, cmd/csi-attacher/main.go with csi-lib-utils' and component-base's
// flags), as --help would print them. --feature-gates is given as the
// gates' effective values.
var referenceDefaults = map[string]string{
	"csi-address":                    "/run/csi/socket",
	"kubeconfig":                     "",
	"kube-api-qps":                   "5",
	"kube-api-burst":                 "10",
	"resync":                         "10m0s",
	"timeout":                        "15s",
	"retry-interval-start":           "1s",
	"retry-interval-max":             "5m0s",
	"worker-threads":                 "10",
	"max-entries":                    "0",
	"default-fstype":                 "",
	"reconcile-sync":                 "1m0s",
	"max-grpc-log-length":            "-1",
	"feature-gates":                  "MutableCSINodeAllocatableCount=true,ReleaseLeaderElectionOnExit=false",
	"leader-election":                "false",
	"leader-election-namespace":      "",
	"leader-election-lease-duration": "15s",
	"leader-election-renew-deadline": "10s",
	"leader-election-retry-period":   "5s",
	"leader-election-labels":         "",
	"http-endpoint":                  "",
	"metrics-address":                "",
	"metrics-path":                   "/metrics",
	"automaxprocs":                   "false",
	"version":                        "false",
	"v":                              "0",
	"vmodule":                        "",
	"logging-format":                 "text",
	"log-flush-frequency":            "5s",
	"log-text-split-stream":          "false",
	"log-json-split-stream":          "false",
}

var (
	codeSpan = regexp.MustCompile("`([^`]*)`")
	flagSpan = regexp.MustCompile("`--?([a-z0-9-]+)`")
)

// readmeTable returns the rows of the first table in the README section
// titled heading whose first cell names flags: each row as its cells.
func readmeTable(t *testing.T, heading string) [][]string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	section := text[i+len(heading)+2:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	var rows [][]string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `-") {
			if len(rows) > 0 && !strings.HasPrefix(line, "|") {
				break // the end of the table
			}
			continue
		}
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |"), " | ")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("README.md section %q has no table of flags", heading)
	}
	return rows
}

// documentedDefaults pairs each flag of a row with the default its cell
// gives: one code span per flag, separated by " / ", or one for all. ok is
// false when the cell starts with no code span (e.g. "required", or
// empty).
func documentedDefaults(flags []string, cell string) (defaults []string, ok bool) {
	if !strings.HasPrefix(cell, "`") {
		return nil, false
	}
	parts := strings.Split(cell, " / ")
	if len(parts) != len(flags) {
		parts = []string{cell}
	}
	for i := range flags {
		part := parts[min(i, len(parts)-1)]
		m := codeSpan.FindStringSubmatch(part)
		if m == nil {
			return nil, false
		}
		defaults = append(defaults, m[1])
	}
	return defaults, true
}

// sameDefault compares a documented default with a flag's DefValue: equal
// text, equal durations (1m and 1m0s), or "" written as `""`.
func sameDefault(doc, def string) bool {
	if doc == def || (doc == `""` && def == "") {
		return true
	}
	a, errA := time.ParseDuration(doc)
	b, errB := time.ParseDuration(def)
	return errA == nil && errB == nil && a == b
}

// TestREADMEFlagDefaults: the Configuration table names every flag, no
// flag that does not exist, and the default of each as the flag
// definitions have it.
func TestREADMEFlagDefaults(t *testing.T) {
	g := NewWithT(t)
	defs := map[string]string{}
	for _, f := range options.Flags() {
		defs[f.Name] = f.Default
	}
	documented := map[string]bool{}
	for _, row := range readmeTable(t, "## Configuration") {
		g.Expect(len(row)).To(BeNumerically(">=", 2), "%v", row)
		var flags []string
		for _, m := range flagSpan.FindAllStringSubmatch(row[0], -1) {
			flags = append(flags, m[1])
		}
		g.Expect(flags).NotTo(BeEmpty(), "%v", row)
		docs, ok := documentedDefaults(flags, row[1])
		for i, name := range flags {
			def, exists := defs[name]
			g.Expect(exists).To(BeTrue(), "the README documents --%s, which does not exist", name)
			documented[name] = true
			if !ok {
				g.Expect(def).To(Or(BeEmpty(), Equal("false")),
					"--%s: the README gives no default (%q), the flag's is %q", name, row[1], def)
				continue
			}
			if strings.HasPrefix(docs[i], "$") {
				g.Expect(def).To(BeEmpty(), "--%s", name)
				continue
			}
			g.Expect(sameDefault(docs[i], def)).To(BeTrue(), "--%s: the README says `%s`, the flag's default is %q", name, docs[i], def)
		}
	}
	for name := range defs {
		g.Expect(documented).To(HaveKey(name), "--%s is missing from the README's Configuration table", name)
	}
}

// TestREADMEFlagDifferences: every default that differs from the
// reference's is in the README's table of differences, with both values
// right and a reason, and the table lists no difference that is gone.
func TestREADMEFlagDifferences(t *testing.T) {
	g := NewWithT(t)
	defs := map[string]string{}
	for _, f := range options.Flags() {
		defs[f.Name] = f.Default
	}
	for name := range referenceDefaults {
		g.Expect(defs).To(HaveKey(name), "the reference's --%s is accepted", name)
	}
	listed := map[string]bool{}
	for _, row := range readmeTable(t, "## Migrating from external-attacher") {
		g.Expect(row).To(HaveLen(4), "flag | reference | here | why: %v", row)
		m := flagSpan.FindStringSubmatch(row[0])
		g.Expect(m).NotTo(BeNil(), "%v", row)
		name := m[1]
		listed[name] = true
		ref, isRef := referenceDefaults[name]
		g.Expect(isRef).To(BeTrue(), "--%s is no flag of the reference", name)
		g.Expect(sameDefault(ref, defs[name])).To(BeFalse(), "--%s no longer differs from the reference; drop its row", name)
		docRef, okRef := documentedDefaults([]string{name}, row[1])
		docOurs, okOurs := documentedDefaults([]string{name}, row[2])
		g.Expect(okRef && sameDefault(docRef[0], ref)).To(BeTrue(), "--%s: the reference's default is %q, the README says %q", name, ref, row[1])
		if defs[name] == "" {
			g.Expect(okOurs).To(BeFalse(), "--%s has no default here, the README says %q", name, row[2])
		} else {
			g.Expect(okOurs && sameDefault(docOurs[0], defs[name])).To(BeTrue(), "--%s: the default is %q, the README says %q", name, defs[name], row[2])
		}
		g.Expect(len(row[3])).To(BeNumerically(">", 20), "--%s: say why it differs", name)
	}
	for name, ref := range referenceDefaults {
		if !sameDefault(ref, defs[name]) {
			g.Expect(listed).To(HaveKey(name), "--%s differs from the reference (%q here, %q there) and is not in the README's table of differences",
				name, defs[name], ref)
		}
	}
}
