package main

import (
	"io"
	"testing"
	"time"
)

func TestCSILatencySetsBoth(t *testing.T) {
	for _, tc := range []struct {
		args               []string
		publish, unpublish time.Duration
	}{
		{nil, 0, 0},
		{[]string{"--csi-latency=1s"}, time.Second, time.Second},
		{[]string{"-csi-latency", "2s", "-unpublish-latency=0"}, 2 * time.Second, 0},
		{[]string{"-publish-latency=3s", "-csi-latency=1s"}, 3 * time.Second, time.Second},
	} {
		c, err := parseFlags(tc.args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if c.publishLatency != tc.publish || c.unpublishLatency != tc.unpublish {
			t.Errorf("%q: publish %s, unpublish %s; want %s, %s", tc.args, c.publishLatency, c.unpublishLatency, tc.publish, tc.unpublish)
		}
	}
}

func TestChecks(t *testing.T) {
	phases := func(attach, detach, release float64) []phaseResult {
		return []phaseResult{{Name: "attach", WritesPerOp: attach}, {Name: "detach", WritesPerOp: detach}, {Name: "release", WritesPerOp: release}}
	}
	for _, tc := range []struct {
		name   string
		r      report
		failed string
	}{
		{"at the floor", report{Phases: phases(3, 1, 1)}, ""},
		{"one extra write in 1000 attaches", report{Phases: phases(3.001, 1, 1)}, "writes per attach 3.001 (at most 3)"},
		{"an extra release write", report{Phases: phases(3, 1, 2)}, "writes per release 2 (at most 1)"},
		{"a duplicate call", report{Phases: phases(3, 1, 1), DuplicateUnpublish: 1}, "duplicate CSI calls 1 (at most 0)"},
	} {
		if got := failedChecks(checks(&tc.r)); got != tc.failed {
			t.Errorf("%s: failed checks %q, want %q", tc.name, got, tc.failed)
		}
	}
}

func TestPer1000(t *testing.T) {
	if got := per1000(2.5, 500); got != 5 {
		t.Errorf("per1000(2.5, 500) = %g, want 5", got)
	}
	if got := per1000(1, 0); got != 0 {
		t.Errorf("per1000(1, 0) = %g, want 0", got)
	}
}
