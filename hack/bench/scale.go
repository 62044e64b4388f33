package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/volume"
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

// scaleOnce runs one binary in a fresh control plane.
func (b *bench) scaleOnce(ctx context.Context, bin scaleBinary, round int) (scaleRun, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.timeout,
		fmt.Errorf("the run did not finish within -timeout=%s", b.cfg.timeout))
	defer cancel()
	run := scaleRun{Binary: bin.name, Path: bin.path, LoadStart: loadAvg()}
	dir, err := testbed.TempDir("csi-bench-scale-run")
	if err != nil {
		return run, err
	}
	b.tmpDir = dir
	b.logPath = filepath.Join(dir, fmt.Sprintf("%s-%d.log", bin.name, round))
	began := time.Now()

	if err := b.startControlPlane(ctx); err != nil {
		return run, err
	}
	s := newScaleState(b.cfg)
	if err := b.startScaleDriver(s); err != nil {
		return run, err
	}
	if err := b.createScaleObjects(ctx, s); err != nil {
		return run, err
	}
	if err := b.startScaleInformers(ctx, s); err != nil {
		return run, err
	}
	run.SetupSecs = seconds(time.Since(began))
	before, err := b.snapshot(ctx)
	if err != nil {
		return run, err
	}

	// The attacher starts; the new VolumeAttachments follow at once.
	args, pprofURL, err := b.scaleArgs(bin)
	if err != nil {
		return run, err
	}
	run.Args = args
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return run, fmt.Errorf("creating the attacher log: %w", err)
	}
	b.printf("==> starting %s %s", bin.path, strings.Join(args, " "))
	b.printf("    log: %s", b.logPath)
	t0 := time.Now()
	started, err := testbed.StartAttacher(bin.path, args, logFile)
	if err != nil {
		return run, err
	}
	b.att = &attacherProc{Attacher: started}
	go b.att.sample()
	b.defer_(b.stopAttacher)

	// When our attacher's controllers start their workers, polled from its
	// log (the reference logs no such line).
	var workers atomic.Int64
	if bin.ours {
		go func() {
			for !b.att.Exited() && ctx.Err() == nil {
				if workersStarted(b.logPath) {
					workers.Store(time.Now().UnixNano())
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	var prof *profiler
	if pprofURL != "" {
		prof = b.startScaleProfile(ctx, pprofURL)
	}
	var created atomic.Int64
	createNew := func(ctx context.Context, i int) error {
		s.newCreated[i] = time.Now()
		err := b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
			_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, s.va(classNew, i, true), metav1.CreateOptions{})
			return err
		})
		if err == nil {
			created.Add(1)
		}
		return err
	}
	want := b.cfg.scaleNew + b.cfg.scalePending
	if _, err := b.runAndWait(ctx, "serve", "new and pending attached", want,
		func(ctx context.Context, i int) error {
			if i < b.cfg.scaleNew {
				return createNew(ctx, i)
			}
			return nil
		},
		func() int { return int(s.attached.Load()) }); err != nil {
		return run, err
	}
	run.NewFirstSeconds, run.NewAllSeconds = s.spanFrom(t0, classNew)
	run.PendingOldestSecond = s.oldestPending(t0)
	_, run.PendingAllSeconds = s.spanFrom(t0, classPending)
	b.printf("new: all %d attached %.2f s after start; pending: oldest attached after %.2f s, all %d after %.2f s",
		b.cfg.scaleNew, run.NewAllSeconds, run.PendingOldestSecond, b.cfg.scalePending, run.PendingAllSeconds)
	if at := workers.Load(); at != 0 {
		run.WorkersSeconds = seconds(unixNano(at).Sub(t0))
	}

	idle, err := b.waitIdle(ctx)
	if err != nil {
		return run, err
	}
	run.IdleSeconds = seconds(idle.Sub(t0))
	cpuIdle, _ := cpuSeconds(b.att.pid())
	run.StartCPUSeconds = round3(cpuIdle)
	b.printf("idle %.2f s after start, %.2f s CPU", run.IdleSeconds, run.StartCPUSeconds)
	if prof != nil {
		if err := prof.finish(b.cfg.cpuProfile); err != nil {
			return run, err
		}
		b.printf("CPU profile from the start until idle: %s (go tool pprof -top %s)", b.cfg.cpuProfile, b.cfg.cpuProfile)
	}
	if err := sleepCtx(ctx, b.cfg.settle); err != nil {
		return run, err
	}
	afterStart, err := b.snapshot(ctx)
	if err != nil {
		return run, err
	}
	d := diffRequests(before.api, afterStart.api, subtractCounts(afterStart.own, before.own), subtractCounts(afterStart.ownFailed, before.ownFailed))
	run.StartWritesBy, run.StartReviews = splitReviews(d.writes)
	run.StartWrites, run.StartReads = sumCounts(run.StartWritesBy), d.reads
	run.ExcessWrites = run.StartWrites - 3*want
	run.Warnings = append(run.Warnings, d.warnings...)
	run.ExistingModified, run.ForeignModified = int(s.existingModified.Load()), int(s.foreignModified.Load())

	// The detach burst: the first -scale-detach existing attachments.
	detachStart := time.Now()
	if _, err := b.runAndWait(ctx, "detach", "gone", b.cfg.scaleDetach,
		func(ctx context.Context, i int) error {
			return b.call(ctx, "DELETE volumeattachments", func(ctx context.Context) error {
				return b.cs.StorageV1().VolumeAttachments().Delete(ctx, scaleName(scaleVAPrefix, classExisting, i), metav1.DeleteOptions{})
			})
		},
		func() int { return int(s.gone.Load()) }); err != nil {
		return run, err
	}
	run.DetachSeconds = seconds(unixNano(s.lastGone.Load()).Sub(detachStart))
	b.printf("detach: %d gone in %.2f s", b.cfg.scaleDetach, run.DetachSeconds)
	if err := sleepCtx(ctx, b.cfg.settle); err != nil {
		return run, err
	}
	afterDetach, err := b.snapshot(ctx)
	if err != nil {
		return run, err
	}
	d = diffRequests(afterStart.api, afterDetach.api, subtractCounts(afterDetach.own, afterStart.own), subtractCounts(afterDetach.ownFailed, afterStart.ownFailed))
	run.DetachWritesBy, _ = splitReviews(d.writes)
	run.DetachWrites = sumCounts(run.DetachWritesBy)
	run.WritesPerDetach = round3(float64(run.DetachWrites) / float64(max(1, b.cfg.scaleDetach)))
	run.DetachCPU = round3(afterDetach.cpu - afterStart.cpu)
	run.Warnings = append(run.Warnings, d.warnings...)

	run.CSIByClass, run.CSIOther, run.Duplicates = s.csiCounts()
	b.stopAttacher()
	run.CPUSeconds = b.rep.AttacherCPUSeconds
	run.PeakRSSMiB, run.PeakAnonMiB = b.rep.AttacherPeakRSSMiB, b.rep.AttacherPeakAnonMiB
	run.Exit = b.rep.AttacherExit
	run.LoadEnd = loadAvg()
	return run, nil
}

// scaleArgs are the binary's flags: the CSI socket and kubeconfig, an HTTP
// endpoint, and its own flags (later flags win). The returned URL is the
// attacher's CPU profile endpoint, with -cpuprofile (ours only).
func (b *bench) scaleArgs(bin scaleBinary) ([]string, string, error) {
	base := []string{
		"--csi-address=" + filepath.Join(b.tmpDir, testbed.SocketName),
		"--kubeconfig=" + b.kubeconfig,
	}
	if !bin.ours {
		ports, err := testbed.FreePorts(1)
		if err != nil {
			return nil, "", err
		}
		// The reference serves /metrics only with --http-endpoint; with it
		// both binaries run the same HTTP servers' worth of work.
		return slices.Concat(base, []string{fmt.Sprintf("--http-endpoint=127.0.0.1:%d", ports[0])}, bin.args), "", nil
	}
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return nil, "", err
	}
	var extra []string
	url := ""
	if b.cfg.cpuProfile != "" {
		ports, err := testbed.FreePorts(1)
		if err != nil {
			return nil, "", err
		}
		b.pprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		extra = []string{"--pprof-bind-address=" + b.pprofAddr}
		url = fmt.Sprintf("%s?seconds=%d", b.pprofURL("profile"), int(profileSlice.Seconds()))
	}
	return slices.Concat(base, endpoints.Flags(), extra, bin.args), url, nil
}

// startScaleProfile takes the attacher's CPU profile from as soon as its
// pprof endpoint answers until finish (at idle).
func (b *bench) startScaleProfile(ctx context.Context, url string) *profiler {
	dir := filepath.Join(b.tmpDir, "profile")
	_ = os.MkdirAll(dir, 0o755)
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{url: url, dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		// The endpoint comes up with the process; poll until it answers.
		for ctx.Err() == nil && !testbed.Ready("http://"+b.pprofAddr+"/debug/pprof/") {
			time.Sleep(20 * time.Millisecond)
		}
		p.run(ctx)
	}()
	return p
}

// waitIdle waits until the attacher used less than idleCPU seconds of CPU
// in idleWindow and returns the start of that window.
func (b *bench) waitIdle(ctx context.Context) (time.Time, error) {
	type sample struct {
		at  time.Time
		cpu float64
	}
	var samples []sample
	var idleAt time.Time
	err := b.waitUntil(ctx, "csi-attacher did not go idle", 0, func() bool {
		cpu, err := cpuSeconds(b.att.pid())
		if err != nil {
			return false
		}
		now := time.Now()
		samples = append(samples, sample{now, cpu})
		// The oldest sample at least idleWindow old.
		i := -1
		for j := len(samples) - 1; j >= 0; j-- {
			if now.Sub(samples[j].at) >= idleWindow {
				i = j
				break
			}
		}
		if i < 0 {
			return false
		}
		samples = samples[i:]
		if cpu-samples[0].cpu < idleCPU {
			idleAt = samples[0].at
			return true
		}
		return false
	})
	return idleAt, err
}

// ---------------------------------------------------------------------------
// State.

// scaleState is the run's objects and what was seen of them.
type scaleState struct {
	cfg       config
	finalizer string

	newCreated []time.Time // written once each, before the create
	mu         sync.Mutex
	attachedAt map[string]time.Time // VA name -> first seen attached
	attached   atomic.Int64         // new and pending ones attached
	gone       atomic.Int64
	lastGone   atomic.Int64

	existingModified, foreignModified atomic.Int64

	csiMu    sync.Mutex
	csi      map[string]map[string]int
	csiOther map[string]int
	pub      map[[2]string]bool
	dups     int
}

func newScaleState(cfg config) *scaleState {
	return &scaleState{
		cfg:        cfg,
		finalizer:  volume.FinalizerName(driverName),
		newCreated: make([]time.Time, cfg.scaleNew),
		attachedAt: map[string]time.Time{},
		csi:        map[string]map[string]int{},
		csiOther:   map[string]int{},
		pub:        map[[2]string]bool{},
	}
}

// node is the node of the i-th object of a class: spread round robin.
func (s *scaleState) node(i int) string { return scaleNodeName(i % s.cfg.scaleNodes) }

// va returns the i-th VolumeAttachment of a class, as
// kube-controller-manager creates it; watched ones carry watchLabel.
func (s *scaleState) va(class string, i int, watched bool) *storagev1.VolumeAttachment {
	drv := driverName
	if class == classForeign {
		drv = otherDriverName
	}
	va := testbed.VA(scaleName(scaleVAPrefix, class, i), drv, s.node(i), scaleName(scalePVPrefix, class, i))
	if watched {
		va.Labels = map[string]string{watchLabel: "true"}
	}
	return va
}

// attachedVA is an existing (or foreign) VolumeAttachment as an attacher
// leaves it: its finalizer and node-ID annotation set; the status is set
// apart (a create drops it).
func (s *scaleState) attachedVA(class string, i int) *storagev1.VolumeAttachment {
	va := s.va(class, i, class == classExisting && i < s.cfg.scaleDetach)
	fin := s.finalizer
	if class == classForeign {
		fin = volume.FinalizerName(otherDriverName)
	}
	va.Finalizers = []string{fin}
	va.Annotations = map[string]string{volume.NodeIDAnnotation: scaleNodeID(s.node(i))}
	return va
}

func (s *scaleState) pv(class string, i int) *corev1.PersistentVolume {
	drv := driverName
	if class == classForeign {
		drv = otherDriverName
	}
	pv := testbed.PV(scaleName(scalePVPrefix, class, i), drv, scaleName(scaleVolPrefix, class, i))
	switch class {
	case classExisting:
		pv.Finalizers = []string{s.finalizer}
	case classForeign:
		pv.Finalizers = []string{volume.FinalizerName(otherDriverName)}
	}
	return pv
}

// published is the driver's state before the start: every existing volume
// on its node.
func (s *scaleState) published() map[string][]string {
	out := make(map[string][]string, s.cfg.scale)
	for i := range s.cfg.scale {
		out[scaleName(scaleVolPrefix, classExisting, i)] = []string{scaleNodeID(s.node(i))}
	}
	return out
}

func (s *scaleState) onCall(c fake.Call) {
	s.csiMu.Lock()
	defer s.csiMu.Unlock()
	class := classOf(c.VolumeID)
	if class == "" {
		s.csiOther[c.Method]++
	} else {
		if s.csi[class] == nil {
			s.csi[class] = map[string]int{}
		}
		s.csi[class][c.Method]++
	}
	if c.Code != codes.OK {
		return
	}
	pair := [2]string{c.VolumeID, c.NodeID}
	switch c.Method {
	case fake.MethodPublish:
		if s.pub[pair] {
			s.dups++
		}
		s.pub[pair] = true
	case fake.MethodUnpublish:
		if !s.pub[pair] {
			s.dups++
		}
		delete(s.pub, pair)
	}
}

func (s *scaleState) csiCounts() (map[string]map[string]int, map[string]int, int) {
	s.csiMu.Lock()
	defer s.csiMu.Unlock()
	byClass := map[string]map[string]int{}
	for k, v := range s.csi {
		byClass[k] = maps.Clone(v)
	}
	return byClass, maps.Clone(s.csiOther), s.dups
}

func (s *scaleState) onVA(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	va, ok := obj.(*storagev1.VolumeAttachment)
	if !ok {
		return
	}
	now := time.Now()
	class := classOf(va.Name)
	if deleted {
		if class == classExisting {
			s.gone.Add(1)
			storeMax(&s.lastGone, now.UnixNano())
		}
		return
	}
	if !va.Status.Attached || (class != classNew && class != classPending) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.attachedAt[va.Name]; !seen {
		s.attachedAt[va.Name] = now
		s.attached.Add(1)
	}
}

// spanFrom returns the first and the last attach of a class, in seconds
// from t0.
func (s *scaleState) spanFrom(t0 time.Time, class string) (first, last float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lo, hi time.Time
	for name, at := range s.attachedAt {
		if classOf(name) != class {
			continue
		}
		if lo.IsZero() || at.Before(lo) {
			lo = at
		}
		if at.After(hi) {
			hi = at
		}
	}
	if lo.IsZero() {
		return 0, 0
	}
	return seconds(lo.Sub(t0)), seconds(hi.Sub(t0))
}

// oldestPending is when the first pending VolumeAttachment created was
// attached, in seconds from t0.
func (s *scaleState) oldestPending(t0 time.Time) float64 {
	if s.cfg.scalePending == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return seconds(s.attachedAt[scaleName(scaleVAPrefix, classPending, 0)].Sub(t0))
}

// ---------------------------------------------------------------------------
// Setup.

// startScaleDriver serves the fake driver with every existing volume
// published.
func (b *bench) startScaleDriver(s *scaleState) error {
	socket := filepath.Join(b.tmpDir, testbed.SocketName)
	cfg := fake.DefaultConfig(driverName)
	cfg.OnCall = s.onCall
	b.driver = fake.New(cfg)
	pub := s.published()
	b.driver.Restore(fake.State{Published: pub})
	for vol, nodes := range pub {
		for _, n := range nodes {
			s.pub[[2]string{vol, n}] = true
		}
	}
	if b.cfg.publishLatency > 0 {
		b.driver.SetLatency(fake.MethodPublish, "", b.cfg.publishLatency)
	}
	if b.cfg.unpublishLatency > 0 {
		b.driver.SetLatency(fake.MethodUnpublish, "", b.cfg.unpublishLatency)
	}
	if err := b.driver.Start(socket); err != nil {
		return fmt.Errorf("starting the fake CSI driver: %w", err)
	}
	b.defer_(b.driver.Stop)
	return nil
}

// createScaleObjects creates the CSINodes, the existing attachments (VA
// with finalizer and annotation, then its status; PV with its finalizer),
// the pending ones (oldest first), the new ones' PVs and the other driver's
// objects.
func (b *bench) createScaleObjects(ctx context.Context, s *scaleState) error {
	cfg := b.cfg
	began := time.Now()
	b.printf("==> creating %d CSINodes, %d attached VolumeAttachments and their PVs, %d pending, %d PVs for new ones, %d attached of %s",
		cfg.scaleNodes, cfg.scale, cfg.scalePending, cfg.scaleNew, cfg.otherObjects, otherDriverName)
	var created atomic.Int64
	step := func(name string, n int, act func(context.Context, int) error) error {
		created.Store(0)
		_, err := b.runAndWait(ctx, name, "created", n, func(ctx context.Context, i int) error {
			if err := act(ctx, i); err != nil {
				return err
			}
			created.Add(1)
			return nil
		}, func() int { return int(created.Load()) })
		return err
	}
	if err := step("csinodes", cfg.scaleNodes, func(ctx context.Context, i int) error {
		node := scaleNodeName(i)
		obj := testbed.CSINode(node,
			storagev1.CSINodeDriver{Name: driverName, NodeID: scaleNodeID(node)},
			storagev1.CSINodeDriver{Name: otherDriverName, NodeID: "other-" + scaleNodeID(node)})
		return b.call(ctx, "POST csinodes", func(ctx context.Context) error {
			_, err := b.cs.StorageV1().CSINodes().Create(ctx, obj, metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	// Attached objects of a class: PV, VA, VA status.
	attached := func(class string, n int) error {
		return step("attached "+class, n, func(ctx context.Context, i int) error {
			if err := b.createPV(ctx, s.pv(class, i)); err != nil {
				return err
			}
			va := s.attachedVA(class, i)
			if err := b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
				_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
				return err
			}); err != nil {
				return err
			}
			patch := fmt.Sprintf(`{"status":{"attached":true,"attachmentMetadata":{"devicePath":"/dev/fake/%s"}}}`,
				scaleName(scaleVolPrefix, class, i))
			return b.call(ctx, "PATCH volumeattachments/status", func(ctx context.Context) error {
				_, err := b.cs.StorageV1().VolumeAttachments().Patch(ctx, va.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
				return err
			})
		})
	}
	if err := attached(classExisting, cfg.scale); err != nil {
		return err
	}
	if err := attached(classForeign, cfg.otherObjects); err != nil {
		return err
	}
	if err := step("new PVs", cfg.scaleNew, func(ctx context.Context, i int) error {
		return b.createPV(ctx, s.pv(classNew, i))
	}); err != nil {
		return err
	}
	// Pending ones one at a time, oldest first, so that their order is
	// their creation order.
	for i := range cfg.scalePending {
		if err := b.createPV(ctx, s.pv(classPending, i)); err != nil {
			return err
		}
		if err := b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
			_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, s.va(classPending, i, true), metav1.CreateOptions{})
			return err
		}); err != nil {
			return err
		}
	}
	b.printf("    created in %.1f s", time.Since(began).Seconds())
	return nil
}

// startScaleInformers follows the watched VolumeAttachments (attach and
// delete times) and counts every modification of the other objects after
// this point: an attacher that writes to an existing attachment shows here.
func (b *bench) startScaleInformers(ctx context.Context, s *scaleState) error {
	factory := informers.NewSharedInformerFactoryWithOptions(b.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{watchLabel: "true"}).String()
		}))
	inf := factory.Storage().V1().VolumeAttachments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onVA(obj, false) },
		UpdateFunc: func(_, obj any) { s.onVA(obj, false) },
		DeleteFunc: func(obj any) { s.onVA(obj, true) },
	}); err != nil {
		return err
	}
	stop := make(chan struct{})
	factory.Start(stop)
	b.defer_(func() {
		close(stop)
		factory.Shutdown()
	})
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the informer for %v did not sync", typ)
		}
	}

	// Raw watches from the current resource version count MODIFIED events
	// of existing and foreign objects, without holding them.
	count := func(obj runtime.Object) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		switch classOf(m.GetName()) {
		case classExisting:
			s.existingModified.Add(1)
		case classForeign:
			s.foreignModified.Add(1)
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.defer_(cancel)
	vaList, err := b.cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	pvList, err := b.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	go watchModified(wctx, vaList.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return b.cs.StorageV1().VolumeAttachments().Watch(ctx, o)
	}, count)
	go watchModified(wctx, pvList.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return b.cs.CoreV1().PersistentVolumes().Watch(ctx, o)
	}, count)
	return nil
}

// watchModified calls f for every MODIFIED event from resource version rv
// on, watching again from the last version seen when the server ends a
// watch.
func watchModified(ctx context.Context, rv string, start func(context.Context, metav1.ListOptions) (watch.Interface, error), f func(runtime.Object)) {
	for ctx.Err() == nil {
		w, err := start(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		for ev := range w.ResultChan() {
			if m, ok := ev.Object.(metav1.Object); ok && ev.Type != watch.Error {
				rv = m.GetResourceVersion()
			}
			if ev.Type == watch.Modified {
				f(ev.Object)
			}
		}
		w.Stop()
	}
}

// splitReviews separates the access reviews (POST *reviews, which store
// nothing) from the writes.
func splitReviews(writes map[string]int) (stored, reviews map[string]int) {
	stored, reviews = map[string]int{}, map[string]int{}
	for kind, n := range writes {
		if strings.HasPrefix(kind, "POST ") && strings.HasSuffix(kind, "reviews") {
			reviews[kind] = n
		} else {
			stored[kind] = n
		}
	}
	return stored, reviews
}

// ---------------------------------------------------------------------------
// Report.

// formatScale prints the runs side by side, then the details and the
// BENCH_JSON line.
func formatScale(r scaleReport) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nResults: %d attached VolumeAttachments on %d nodes before the start, %d pending, %d new right after the start, %d detaches, %d of another driver\n\n",
		r.Existing, r.Nodes, r.Pending, r.New, r.Detach, r.Foreign)
	rows := []struct {
		name string
		f    func(scaleRun) string
	}{
		{fmt.Sprintf("%d new: first / all attached after start (s)", r.New), func(x scaleRun) string {
			return fmt.Sprintf("%.2f / %.2f", x.NewFirstSeconds, x.NewAllSeconds)
		}},
		{fmt.Sprintf("%d pending: oldest / all attached after start (s)", r.Pending), func(x scaleRun) string {
			return fmt.Sprintf("%.2f / %.2f", x.PendingOldestSecond, x.PendingAllSeconds)
		}},
		{"idle after start (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.IdleSeconds) }},
		{"CPU start to idle (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.StartCPUSeconds) }},
		{"writes start to idle / beyond 3 per attach", func(x scaleRun) string {
			return fmt.Sprintf("%d / %d", x.StartWrites, x.ExcessWrites)
		}},
		{"existing objects modified", func(x scaleRun) string { return fmt.Sprintf("%d", x.ExistingModified) }},
		{"CSI calls on existing (publish / unpublish / other)", func(x scaleRun) string {
			c := x.CSIByClass[classExisting]
			pub, unpub := c[fake.MethodPublish], c[fake.MethodUnpublish]
			other := 0
			for m, n := range c {
				if m != fake.MethodPublish && m != fake.MethodUnpublish {
					other += n
				}
			}
			return fmt.Sprintf("%d / %d / %d", pub, unpub, other)
		}},
		{fmt.Sprintf("%d detaches (s)", r.Detach), func(x scaleRun) string { return fmt.Sprintf("%.2f", x.DetachSeconds) }},
		{"writes per detach", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.WritesPerDetach) }},
		{"CPU detaches (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.DetachCPU) }},
		{"CPU whole run (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.CPUSeconds) }},
		{"peak RSS (MiB)", func(x scaleRun) string { return fmt.Sprintf("%.1f", x.PeakRSSMiB) }},
		{"duplicate CSI calls", func(x scaleRun) string { return fmt.Sprintf("%d", x.Duplicates) }},
		{"load average start / end", func(x scaleRun) string { return x.LoadStart + " / " + x.LoadEnd }},
	}
	sb.WriteString("| |")
	for _, x := range r.Runs {
		fmt.Fprintf(&sb, " %s |", x.Binary)
	}
	sb.WriteString("\n|---|")
	for range r.Runs {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&sb, "| %s |", row.name)
		for _, x := range r.Runs {
			fmt.Fprintf(&sb, " %s |", row.f(x))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&sb, "%s %s\n", x.Binary, formatArgs(x.Args))
		if x.WorkersSeconds > 0 {
			fmt.Fprintf(&sb, "  controllers' workers started after %.2f s\n", x.WorkersSeconds)
		}
		fmt.Fprintf(&sb, "  writes start to idle: %s\n", formatCounts(x.StartWritesBy))
		fmt.Fprintf(&sb, "  reads start to idle:  %s (a WATCH counts when it ends)\n", formatCounts(x.StartReads))
		fmt.Fprintf(&sb, "  access reviews:       %s\n", formatCounts(x.StartReviews))
		fmt.Fprintf(&sb, "  detach writes:        %s\n", formatCounts(x.DetachWritesBy))
		classes := slices.Sorted(maps.Keys(x.CSIByClass))
		for _, c := range classes {
			fmt.Fprintf(&sb, "  CSI calls (%s):        %s\n", className(c), formatCounts(x.CSIByClass[c]))
		}
		fmt.Fprintf(&sb, "  CSI calls (no volume): %s\n", formatCounts(x.CSIOther))
		fmt.Fprintf(&sb, "  foreign objects modified: %d; exit: %s; setup %.1f s\n", x.ForeignModified, x.Exit, x.SetupSecs)
		for _, w := range x.Warnings {
			fmt.Fprintf(&sb, "  warning: %s\n", w)
		}
	}
	fmt.Fprintf(&sb, "machine: %d CPUs, %d MiB, %s, load average %s at the start, %s at the end\n",
		r.Machine.CPUs, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	if data, err := json.Marshal(r); err == nil {
		fmt.Fprintf(&sb, "BENCH_JSON %s\n", data)
	}
	return sb.String()
}

func className(c string) string {
	switch c {
	case classExisting:
		return "existing"
	case classPending:
		return "pending"
	case classNew:
		return "new"
	case classForeign:
		return "foreign"
	}
	return c
}

// scaleChecks verifies, for our attacher only, that the existing attached
// objects cost no write and no CSI call, that a detach costs one write and
// that no CSI call was a duplicate.
func scaleChecks(r scaleReport) string {
	var failed []string
	for _, x := range r.Runs {
		if x.Binary != "csi-attacher" {
			continue
		}
		if x.ExistingModified > 0 {
			failed = append(failed, fmt.Sprintf("%d existing objects modified before the detaches (want 0)", x.ExistingModified))
		}
		if n := x.CSIByClass[classExisting][fake.MethodPublish]; n > 0 {
			failed = append(failed, fmt.Sprintf("%d ControllerPublishVolume calls for existing attachments (want 0)", n))
		}
		if x.WritesPerDetach > 1 {
			failed = append(failed, fmt.Sprintf("%.3f writes per detach (at most 1)", x.WritesPerDetach))
		}
		if x.Duplicates > 0 {
			failed = append(failed, fmt.Sprintf("%d duplicate CSI calls (want 0)", x.Duplicates))
		}
	}
	return strings.Join(failed, "; ")
}
