package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// The scale benchmark (-scale N): an attacher started in a cluster that
// already has N attached VolumeAttachments of its driver, as after a
// failover or an upgrade. See doc.go.

// Object classes of the scale benchmark, the middle part of every name
// ("scale-va-x-000042"), so that a name or a volume ID tells its class.
const (
	classExisting = "x" // attached before the attacher starts
	classPending  = "p" // created before the attacher starts, not attached
	classNew      = "n" // created right after the attacher starts
	classForeign  = "f" // another driver's

	scaleVAPrefix  = "scale-va-"
	scalePVPrefix  = "scale-pv-"
	scaleVolPrefix = "scale-vol-"
	scaleNode      = "scale-node-"

	// watchLabel marks the VolumeAttachments the benchmark's informer
	// follows (pending, new and the existing ones the detach burst
	// deletes), so that it does not hold the other N.
	watchLabel = "bench.csi-attacher.io/watch"

	// idleWindow and idleCPU decide when the attacher has worked through
	// the existing objects: less than idleCPU seconds of CPU in idleWindow.
	idleWindow = 2 * time.Second
	idleCPU    = 0.05
	idleSample = 250 * time.Millisecond
)

// referenceDefaultArgs are the reference attacher's flags in the run: its
// defaults (leader election off) with the workers and client rates of a
// busy production install.
var referenceDefaultArgs = []string{"--worker-threads=100", "--kube-api-qps=1000", "--kube-api-burst=1000"}

func scaleName(prefix, class string, i int) string { return fmt.Sprintf("%s%s-%06d", prefix, class, i) }
func scaleNodeName(i int) string                   { return fmt.Sprintf("%s%04d", scaleNode, i) }
func scaleNodeID(node string) string               { return node + "-id" }

// classOf returns the class in a benchmark name or volume ID, "" if none.
func classOf(name string) string {
	for _, p := range []string{scaleVolPrefix, scaleVAPrefix, scalePVPrefix} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			class, _, ok := strings.Cut(rest, "-")
			if ok {
				return class
			}
		}
	}
	return ""
}

// scaleRun is one attacher binary's run, in its own control plane.
type scaleRun struct {
	Binary string   `json:"binary"` // "csi-attacher" or "reference"
	Path   string   `json:"path"`
	Args   []string `json:"args"`

	// From the attacher's start: the first and the last of the new
	// VolumeAttachments attached, the oldest pending one and the last
	// pending one attached.
	NewFirstSeconds     float64 `json:"new_first_attached_seconds"`
	NewAllSeconds       float64 `json:"new_all_attached_seconds"`
	PendingOldestSecond float64 `json:"pending_oldest_attached_seconds"`
	PendingAllSeconds   float64 `json:"pending_all_attached_seconds"`
	// WorkersSeconds is when the attacher logged that every controller
	// started its workers (csi-attacher only; 0 when not seen).
	WorkersSeconds float64 `json:"workers_started_seconds,omitempty"`
	// IdleSeconds is when the attacher went idle (less than idleCPU in
	// idleWindow) after serving the new and pending work: the end of its
	// pass over the existing objects.
	IdleSeconds float64 `json:"idle_seconds"`
	// StartCPUSeconds is its CPU from its start until idle.
	StartCPUSeconds float64 `json:"start_cpu_seconds"`
	// StartWrites are its API writes from its start until idle (and the
	// settle time), by request; ExcessWrites is what goes beyond the floor
	// of 3 per new and pending attach: writes spent on the existing objects.
	StartWrites   int            `json:"start_writes"`
	StartWritesBy map[string]int `json:"start_writes_by_request"`
	ExcessWrites  int            `json:"excess_writes"`
	StartReads    map[string]int `json:"start_reads_by_request"`
	// StartReviews are the access reviews the attacher sent at its start
	// (POST selfsubjectaccessreviews): creates that store nothing, so not
	// writes.
	StartReviews     map[string]int `json:"start_reviews"`
	ExistingModified int            `json:"existing_objects_modified"`
	ForeignModified  int            `json:"foreign_objects_modified"`
	// CSI calls by class ("x", "p", "n") and method.
	CSIByClass map[string]map[string]int `json:"csi_calls_by_class"`
	CSIOther   map[string]int            `json:"csi_calls_other"`
	Duplicates int                       `json:"duplicate_csi_calls"`

	DetachSeconds   float64        `json:"detach_seconds"`
	DetachWrites    int            `json:"detach_writes"`
	DetachWritesBy  map[string]int `json:"detach_writes_by_request"`
	WritesPerDetach float64        `json:"writes_per_detach"`
	DetachCPU       float64        `json:"detach_cpu_seconds"`

	CPUSeconds  float64  `json:"cpu_seconds"`
	PeakRSSMiB  float64  `json:"peak_rss_mib"`
	PeakAnonMiB float64  `json:"peak_anon_mib"`
	Exit        string   `json:"exit"`
	SetupSecs   float64  `json:"setup_seconds"`
	LoadStart   string   `json:"load_average_start"`
	LoadEnd     string   `json:"load_average_end"`
	Warnings    []string `json:"warnings,omitempty"`
}

// scaleReport is the BENCH_JSON of the scale benchmark.
type scaleReport struct {
	Existing int        `json:"existing"`
	Pending  int        `json:"pending"`
	New      int        `json:"new"`
	Detach   int        `json:"detach"`
	Nodes    int        `json:"nodes"`
	Foreign  int        `json:"foreign"`
	Runs     []scaleRun `json:"runs"`
	Machine  machine    `json:"machine"`
}

// scaleBinary is one attacher to run.
type scaleBinary struct {
	name, path string
	args       []string
	ours       bool
}

// runScale runs every binary (ours, then the reference if given) -rounds
// times, each in a fresh control plane with the same objects, and prints
// the table.
func runScale(ctx context.Context, cfg config) (scaleReport, error) {
	// envtest logs through controller-runtime; without a logger it
	// complains, with a stack trace, once per control plane.
	ctrllog.SetLogger(logr.Discard())
	root, err := testbed.RepoRoot()
	if err != nil {
		return scaleReport{}, err
	}
	dir, err := testbed.TempDir("csi-bench-scale")
	if err != nil {
		return scaleReport{}, err
	}
	defer os.RemoveAll(dir)
	rep := scaleReport{
		Existing: cfg.scale, Pending: cfg.scalePending, New: cfg.scaleNew, Detach: cfg.scaleDetach,
		Nodes: cfg.scaleNodes, Foreign: cfg.otherObjects, Machine: machineInfo(),
	}
	fmt.Printf("csi-attacher scale benchmark: %d attached VolumeAttachments on %d nodes, %d pending, %d new after start, %d detaches, %d objects of another driver\n",
		rep.Existing, rep.Nodes, rep.Pending, rep.New, rep.Detach, rep.Foreign)
	fmt.Printf("machine: %d CPUs, %d MiB, load average %s\n", rep.Machine.CPUs, rep.Machine.MemTotalMiB, rep.Machine.LoadAvgStart)

	ours := filepath.Join(dir, "csi-attacher")
	version := "bench"
	wait := testbed.BuildAttacher(ctx, root, ours, "-ldflags", "-X main.version="+version)
	fmt.Printf("==> building csi-attacher (go build -o %s .)\n", ours)
	if _, err := wait(); err != nil {
		return rep, err
	}
	bins := []scaleBinary{{name: "csi-attacher", path: ours, args: cfg.attacherArgs, ours: true}}
	if cfg.referenceBinary != "" {
		args := referenceDefaultArgs
		if cfg.referenceArgs != "" {
			args = strings.Fields(cfg.referenceArgs)
		}
		bins = append(bins, scaleBinary{name: "reference", path: cfg.referenceBinary, args: args})
	}
	for round := range cfg.rounds {
		for _, bin := range bins {
			fmt.Printf("\n==> round %d/%d: %s\n", round+1, cfg.rounds, bin.name)
			b := newBench(cfg)
			run, err := b.scaleOnce(ctx, bin, round)
			b.cleanup(err == nil)
			if err != nil {
				return rep, fmt.Errorf("%s: %w", bin.name, err)
			}
			rep.Runs = append(rep.Runs, run)
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	fmt.Print(formatScale(rep))
	if cfg.jsonPath != "" {
		data, err := json.Marshal(rep)
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(cfg.jsonPath, append(data, '\n'), 0o644); err != nil {
			return rep, fmt.Errorf("writing %s: %w", cfg.jsonPath, err)
		}
	}
	if cfg.check {
		if failed := scaleChecks(rep); failed != "" {
			return rep, fmt.Errorf("checks failed: %s", failed)
		}
	}
	return rep, nil
}
