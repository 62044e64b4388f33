package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

func TestClassOf(t *testing.T) {
	for name, want := range map[string]string{
		scaleName(scaleVAPrefix, classExisting, 42): classExisting,
		scaleName(scalePVPrefix, classPending, 0):   classPending,
		scaleName(scaleVolPrefix, classNew, 999999): classNew,
		scaleName(scaleVAPrefix, classForeign, 7):   classForeign,
		"bench-va-00001":       "",
		"csi-0123456789abcdef": "",
		scaleVolPrefix + "x":   "",
	} {
		if got := classOf(name); got != want {
			t.Errorf("classOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestScaleFlags(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "reference")
	if err := os.WriteFile(ref, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (config, error) {
		return parseFlags(args, func(string) string { return "" }, io.Discard)
	}
	c, err := parse("-scale", "20000")
	if err != nil {
		t.Fatal(err)
	}
	if c.otherObjects != 2000 || c.scaleDetach != 1000 || c.scaleNew != 100 || c.scalePending != 100 || c.scaleNodes != 500 || c.rounds != 1 {
		t.Errorf("-scale 20000: other %d, detach %d, new %d, pending %d, nodes %d, rounds %d; want 2000, 1000, 100, 100, 500, 1",
			c.otherObjects, c.scaleDetach, c.scaleNew, c.scalePending, c.scaleNodes, c.rounds)
	}
	// A size below the default burst detaches every existing attachment.
	if c, err = parse("-scale", "300", "-other-driver-objects", "0"); err != nil || c.scaleDetach != 300 || c.otherObjects != 0 {
		t.Errorf("-scale 300: detach %d, other %d, err %v; want 300, 0, nil", c.scaleDetach, c.otherObjects, err)
	}
	if _, err = parse("-scale", "100000", "-reference-binary", ref, "-rounds", "2"); err != nil {
		t.Errorf("-scale 100000 with a reference: %v", err)
	}
	for _, args := range [][]string{
		{"-scale", "100", "-scale-detach", "101"},
		{"-scale", "100", "-scale-new", "0"},
		{"-scale", "100", "-scale-nodes", "0"},
		{"-scale", "100", "-rounds", "0"},
		{"-scale", "100", "-cluster"},
		{"-scale", "100", "-allocprofile", "x"},
		{"-scale", "100", "-reference-binary", filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestSplitReviews(t *testing.T) {
	stored, reviews := splitReviews(map[string]int{
		"PATCH volumeattachments":        3,
		"POST selfsubjectaccessreviews":  17,
		"POST volumeattachments":         1,
		"PATCH volumeattachments/status": 2,
	})
	if sumCounts(stored) != 6 || reviews["POST selfsubjectaccessreviews"] != 17 || len(reviews) != 1 {
		t.Errorf("stored %v, reviews %v", stored, reviews)
	}
}

func TestScaleReport(t *testing.T) {
	ours := scaleRun{Binary: "csi-attacher", NewAllSeconds: 1.5, WritesPerDetach: 1,
		CSIByClass: map[string]map[string]int{classExisting: {fake.MethodUnpublish: 1000}}}
	ref := scaleRun{Binary: "reference", NewAllSeconds: 0.9, WritesPerDetach: 2, ExistingModified: 74,
		CSIByClass: map[string]map[string]int{classExisting: {fake.MethodPublish: 74, fake.MethodUnpublish: 1000}}}
	r := scaleReport{Existing: 20000, New: 100, Pending: 100, Detach: 1000, Runs: []scaleRun{ours, ref}}
	out := formatScale(r)
	for _, want := range []string{
		"| | csi-attacher | reference |",
		"| 100 new: first / all attached after start (s) | 0.00 / 1.50 | 0.00 / 0.90 |",
		"| CSI calls on existing (publish / unpublish / other) | 0 / 1000 / 0 | 74 / 1000 / 0 |",
		"BENCH_JSON {",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q:\n%s", want, out)
		}
	}
	// The reference's figures are reported, never checked.
	if failed := scaleChecks(r); failed != "" {
		t.Errorf("checks failed: %s", failed)
	}
	r.Runs[0].ExistingModified, r.Runs[0].Duplicates = 3, 1
	r.Runs[0].CSIByClass[classExisting][fake.MethodPublish] = 2
	failed := scaleChecks(r)
	for _, want := range []string{"3 existing objects modified", "2 ControllerPublishVolume calls", "1 duplicate CSI calls"} {
		if !strings.Contains(failed, want) {
			t.Errorf("checks %q do not name %q", failed, want)
		}
	}
}

// TestScaleRun runs the scale benchmark end to end at a small size against
// our attacher: the existing attachments cost no write and no publish, the
// new, pending and detached ones are all served. It needs kube-apiserver and
// etcd (KUBEBUILDER_ASSETS, which `make test` sets); `make bench-scale` runs
// the sizes that matter.
func TestScaleRun(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: `make test` sets it (hack/install-envtest.sh)")
	}
	if testing.Short() {
		t.Skip("builds and runs the attacher")
	}
	cfg, err := parseFlags([]string{"-scale", "300", "-scale-new", "20", "-scale-pending", "20", "-scale-detach", "50",
		"-scale-nodes", "10", "-settle", "1s", "-timeout", "4m"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runScale(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if r.NewAllSeconds <= 0 || r.PendingAllSeconds <= 0 || r.PendingOldestSecond <= 0 || r.IdleSeconds <= 0 {
		t.Errorf("new %.2f s, pending oldest %.2f s, all %.2f s, idle %.2f s: want all positive",
			r.NewAllSeconds, r.PendingOldestSecond, r.PendingAllSeconds, r.IdleSeconds)
	}
	if got := r.CSIByClass[classNew][fake.MethodPublish] + r.CSIByClass[classPending][fake.MethodPublish]; got != 40 {
		t.Errorf("%d publishes for new and pending attachments, want 40", got)
	}
	if got := r.CSIByClass[classExisting][fake.MethodUnpublish]; got != 50 {
		t.Errorf("%d unpublishes for the detached attachments, want 50", got)
	}
	if r.StartWrites != 3*40 || r.ExcessWrites != 0 {
		t.Errorf("%d writes from the start until idle (%v), %d beyond the floor; want 120 and 0", r.StartWrites, r.StartWritesBy, r.ExcessWrites)
	}
	if r.PeakRSSMiB <= 0 || r.CPUSeconds <= 0 {
		t.Errorf("peak RSS %.1f MiB, CPU %.2f s: want both positive", r.PeakRSSMiB, r.CPUSeconds)
	}
}
