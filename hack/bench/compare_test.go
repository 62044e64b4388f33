package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareFlags(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "reference")
	if err := os.WriteFile(ref, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (config, error) {
		return parseFlags(args, func(string) string { return "" }, io.Discard)
	}
	c, err := parse("-reference-binary", ref, "-rounds", "2", "--", "--worker-threads=50")
	if err != nil {
		t.Fatal(err)
	}
	bins := compareBinaries(c, "/tmp/ours")
	if len(bins) != 2 || !bins[0].ours || bins[0].path != "/tmp/ours" || bins[1].ours || bins[1].path != ref {
		t.Fatalf("binaries %+v: want ours at /tmp/ours, then the reference at %s", bins, ref)
	}
	if got := strings.Join(bins[0].args, " "); got != "--worker-threads=50" {
		t.Errorf("our flags %q, want the ones after --", got)
	}
	if got := strings.Join(bins[1].args, " "); got != strings.Join(referenceDefaultArgs, " ") {
		t.Errorf("the reference's flags %q, want its defaults %q", got, referenceDefaultArgs)
	}
	c, err = parse("-reference-binary", ref, "-reference-args", "--worker-threads=10 --timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	if got := compareBinaries(c, "ours")[1].args; len(got) != 2 || got[1] != "--timeout=5s" {
		t.Errorf("the reference's flags %q, want -reference-args split", got)
	}
	for _, args := range [][]string{
		{"-reference-binary", filepath.Join(t.TempDir(), "missing")},
		{"-reference-binary", ref, "-rounds", "0"},
		{"-reference-binary", ref, "-cluster"},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// comparePhases are three phases of 1000 volumes with the given CPU and
// writes per operation.
func comparePhases(cpu [3]float64, writes [3]float64) []phaseResult {
	return []phaseResult{
		{Name: "attach", AttacherCPUSeconds: cpu[0], AttacherCPUPer1000: cpu[0], WritesPerOp: writes[0], Latency: &latencyStats{P50: 2.5, P99: 4}},
		{Name: "detach", AttacherCPUSeconds: cpu[1], AttacherCPUPer1000: cpu[1], WritesPerOp: writes[1]},
		{Name: "release", AttacherCPUSeconds: cpu[2], AttacherCPUPer1000: cpu[2], WritesPerOp: writes[2]},
	}
}

func compareRun(binary string, cpu, writes [3]float64, dup int) report {
	r := report{Binary: binary, N: 1000, Phases: comparePhases(cpu, writes), DuplicatePublish: dup}
	r.summarize()
	return r
}

func TestCPURatios(t *testing.T) {
	runs := []report{
		compareRun(oursName, [3]float64{0.4, 0.2, 0.2}, [3]float64{3, 1, 1}, 0),
		compareRun(referenceName, [3]float64{1, 0.5, 0.4}, [3]float64{3.4, 2, 1}, 300),
		compareRun(oursName, [3]float64{0.6, 0.2, 0.2}, [3]float64{3, 1, 1}, 0),
		compareRun(referenceName, [3]float64{1, 0.5, 0.4}, [3]float64{3.4, 2, 1}, 300),
	}
	got := cpuRatios(runs)
	// Means: ours 0.5 / 0.2 / 0.2, 0.9 in all; the reference 1 / 0.5 / 0.4, 1.9.
	want := map[string]float64{"attach": 0.5, "detach": 0.4, "release": 0.5, "total": round3(0.9 / 1.9)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ratio %s = %g, want %g (all: %v)", k, got[k], v, got)
		}
	}
	if got := cpuRatios(runs[:1]); len(got) != 0 {
		t.Errorf("ratios without a reference run: %v, want none", got)
	}
}

func TestCompareReport(t *testing.T) {
	r := compareReport{N: 1000, Runs: []report{
		compareRun(oursName, [3]float64{0.4, 0.2, 0.2}, [3]float64{3, 1, 1}, 0),
		compareRun(referenceName, [3]float64{1, 0.5, 0.5}, [3]float64{3.4, 2, 1}, 300),
	}}
	r.CPURatio = cpuRatios(r.Runs)
	out, err := formatCompare(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| | csi-attacher | reference |",
		"| CPU s per 1000 volumes: attach / detach / release | 0.40 / 0.20 / 0.20 | 1.00 / 0.50 / 0.50 |",
		"| CPU s per 1000 volumes, the three phases | 0.80 | 2.00 |",
		"| writes per attach / detach / release | 3.00 / 1.00 / 1.00 | 3.40 / 2.00 / 1.00 |",
		"| duplicate CSI calls (publish / unpublish) | 0 / 0 | 300 / 0 |",
		"| latency p50 (s) | 2.50 / - / - | 2.50 / - / - |",
		"csi-attacher / reference: 0.40x (attach 0.40x, detach 0.40x, release 0.40x)",
		"BENCH_JSON {",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q:\n%s", want, out)
		}
	}
	// The reference's 2 writes per detach and its duplicates are reported,
	// never checked; ours are.
	if failed := compareChecks(r); failed != "" {
		t.Errorf("checks failed on the reference's figures: %s", failed)
	}
	r.Runs[0] = compareRun(oursName, [3]float64{0.4, 0.2, 0.2}, [3]float64{3, 2, 1}, 1)
	failed := compareChecks(r)
	for _, want := range []string{"writes per detach 2 (at most 1)", "duplicate CSI calls 1"} {
		if !strings.Contains(failed, want) {
			t.Errorf("checks %q do not name %q", failed, want)
		}
	}
	if _, err := formatCompare(compareReport{}); err == nil {
		t.Error("an empty report: no error")
	}
}
