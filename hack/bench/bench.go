package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// bench holds everything a run starts, so that cleanup can stop it, and
// everything it measures.
type bench struct {
	cfg   config
	began time.Time
	out   sync.Mutex

	tmpDir   string
	logPath  string
	cleanups []func()

	restCfg    *rest.Config
	kubeconfig string
	cs         kubernetes.Interface
	httpClient *http.Client // for the API server's /metrics

	driver *fake.Driver
	csi    *csiTracker
	objs   *tracker
	own    *ownRequests
	att    *attacherProc
	// pprofAddr is the attacher's --pprof-bind-address, with -cpuprofile.
	pprofAddr string
	// metricsURL is the attacher's /metrics, for its allocation totals.
	metricsURL string

	rep report
	// bin is the binary to run when it is not ours built here (compare.go);
	// compare is set when the run is one of several printed side by side.
	bin     scaleBinary
	compare bool
}

func newBench(cfg config) *bench {
	return &bench{
		cfg:   cfg,
		began: time.Now(),
		csi:   newCSITracker(),
		objs:  newTracker(cfg.n),
		own:   newOwnRequests(),
	}
}

func (b *bench) run(parent context.Context) error {
	ctx, cancel := context.WithTimeoutCause(parent, b.cfg.timeout,
		fmt.Errorf("the benchmark did not finish within -timeout=%s", b.cfg.timeout))
	defer cancel()

	b.rep = report{
		N:                  b.cfg.n,
		PublishLatency:     b.cfg.publishLatency.String(),
		UnpublishLatency:   b.cfg.unpublishLatency.String(),
		OtherDriverObjects: b.cfg.otherObjects,
		AttacherArgs:       b.cfg.attacherArgs,
		Machine:            machineInfo(),
	}
	b.printf("csi-attacher benchmark: N=%d, publish latency %s, unpublish latency %s, %d objects of another driver, attacher flags %q",
		b.cfg.n, b.cfg.publishLatency, b.cfg.unpublishLatency, b.cfg.otherObjects, b.cfg.attacherArgs)
	b.printf("machine: %d CPUs, %d MiB, load average %s", b.rep.Machine.CPUs, b.rep.Machine.MemTotalMiB, b.rep.Machine.LoadAvgStart)

	dir, err := testbed.TempDir("csi-bench")
	if err != nil {
		return err
	}
	b.tmpDir = dir
	b.logPath = filepath.Join(dir, "csi-attacher.log")

	bin, build, err := b.binary(ctx, dir)
	if err != nil {
		return err
	}

	if err := b.startControlPlane(ctx); err != nil {
		return err
	}
	if err := b.startDriver(); err != nil {
		return err
	}
	if err := build(); err != nil {
		return err
	}
	if err := b.createObjects(ctx); err != nil {
		return err
	}
	if err := b.startInformers(ctx); err != nil {
		return err
	}
	if err := b.start(ctx, bin); err != nil {
		return err
	}

	prof, err := b.startProfile(ctx)
	if err != nil {
		return err
	}
	for _, p := range []phaseSpec{b.attachPhase(), b.detachPhase(), b.releasePhase()} {
		if err := b.measure(ctx, p); err != nil {
			return err
		}
	}
	if err := b.finishProfile(ctx, prof); err != nil {
		return err
	}

	b.rep.StillPublished = len(b.driver.Publications())
	b.rep.CSICalls, b.rep.CSIFailedCalls, b.rep.DuplicatePublish, b.rep.DuplicateUnpublish = b.csi.totals()
	b.rep.AttachErrors = int(b.objs.attachErrors.Load())
	b.rep.DetachErrors = int(b.objs.detachErrors.Load())

	b.stopAttacher()
	b.rep.Machine.LoadAvgEnd = loadAvg()
	b.rep.TotalSeconds = seconds(time.Since(b.began))
	b.rep.summarize()
	if b.compare {
		return nil // runCompare prints the runs side by side and checks ours
	}
	if err := b.printReport(); err != nil {
		return err
	}
	if failed := failedChecks(b.rep.Checks); failed != "" && b.cfg.check {
		return fmt.Errorf("checks failed: %s", failed)
	}
	return nil
}

// phaseSpec describes one measured phase: ops requests (act) whose effect is
// observed by the informers.
type phaseSpec struct {
	name string // "attach"
	noun string // in the progress line: "attached"
	ops  int
	// act sends the i-th request.
	act func(ctx context.Context, i int) error
	// done counts the observed completions; last is the time of the latest.
	done func() int
	last func() time.Time
	// latencies returns the per-operation latencies.
	latencies func() []time.Duration
	// ownWrites are the benchmark's requests in this phase, e.g. "POST volumeattachments".
	ownWrites string
}

// measure runs one phase between two snapshots of the counters.
func (b *bench) measure(ctx context.Context, p phaseSpec) error {
	before, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	b.printf("==> %s: %d operations", p.name, p.ops)
	start := time.Now()
	sent, err := b.runAndWait(ctx, p.name, p.noun, p.ops, p.act, p.done)
	if err != nil {
		return err
	}
	end := p.last()
	if end.Before(start) {
		end = time.Now()
	}
	took := end.Sub(start)
	b.printf("%s: %d/%d %s in %.2f s", p.name, p.done(), p.ops, p.noun, took.Seconds())
	if err := sleepCtx(ctx, b.cfg.settle); err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	res := b.phaseResult(p, took, before, after)
	res.RequestsSeconds = seconds(sent.Sub(start))
	b.rep.Phases = append(b.rep.Phases, res)
	return nil
}

func (b *bench) attachPhase() phaseSpec {
	t := b.objs
	return phaseSpec{
		name: "attach", noun: "attached", ops: b.cfg.n,
		act:       b.createVA,
		done:      func() int { return int(t.attached.Load()) },
		last:      func() time.Time { return unixNano(t.lastAttached.Load()) },
		latencies: t.attachLatencies,
		ownWrites: "POST volumeattachments",
	}
}

func (b *bench) detachPhase() phaseSpec {
	t := b.objs
	return phaseSpec{
		name: "detach", noun: "gone", ops: b.cfg.n,
		act:       b.deleteVA,
		done:      func() int { return int(t.vaGone.Load()) },
		last:      func() time.Time { return unixNano(t.lastVAGone.Load()) },
		latencies: t.detachLatencies,
		ownWrites: "DELETE volumeattachments",
	}
}

func (b *bench) releasePhase() phaseSpec {
	t := b.objs
	return phaseSpec{
		name: "release", noun: "PVs gone", ops: b.cfg.n,
		act:       b.deletePV,
		done:      func() int { return int(t.pvGone.Load()) },
		last:      func() time.Time { return unixNano(t.lastPVGone.Load()) },
		latencies: t.releaseLatencies,
		ownWrites: "DELETE persistentvolumes",
	}
}

// runAndWait sends ops requests through a pool of poolSize goroutines and
// waits until done() reaches ops, printing progress every progressEvery. It
// fails when a request fails, when the attacher exits or when ctx ends.
//
// sent is when the last of the benchmark's own requests returned: until
// then the phase is bounded by how fast the API server takes them, not by
// the attacher.
func (b *bench) runAndWait(ctx context.Context, phase, noun string, ops int, act func(context.Context, int) error, done func() int) (sent time.Time, err error) {
	poolCtx, cancelPool := context.WithCancel(ctx)
	defer cancelPool()
	poolDone := make(chan struct{})
	var poolErr error
	go func() {
		poolErr = runPool(poolCtx, ops, poolSize, act)
		sent = time.Now()
		close(poolDone)
	}()
	// Wait for the pool on every return, so that no request is in flight
	// (and uncounted) when the caller reads the counters.
	defer func() {
		cancelPool()
		<-poolDone
	}()

	began := time.Now()
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	var attacherDone <-chan struct{}
	if b.att != nil {
		attacherDone = b.att.Done()
	}
	ended := func() error {
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
			return fmt.Errorf("%s did not finish: %w; %d/%d %s after %.1f s",
				phase, cause, done(), ops, noun, time.Since(began).Seconds())
		}
		return errInterrupted
	}
	pending := poolDone
	for done() < ops || pending != nil {
		select {
		case <-poll.C:
		case <-progress.C:
			b.printf("%s: %d/%d %s, %.1f s", phase, done(), ops, noun, time.Since(began).Seconds())
		case <-pending:
			if poolErr != nil {
				if ctx.Err() != nil {
					return time.Time{}, ended()
				}
				return time.Time{}, fmt.Errorf("%s: %w", phase, poolErr)
			}
			pending = nil
		case <-attacherDone:
			return time.Time{}, fmt.Errorf("csi-attacher exited unexpectedly (%s) during %s: %d/%d %s",
				testbed.ExitStatus(b.att.Err()), phase, done(), ops, noun)
		case <-ctx.Done():
			return time.Time{}, ended()
		}
	}
	// The pool has finished (pending is nil), so sent is set.
	return sent, nil
}

// runPool calls f(ctx, i) for i in [0, n) on workers goroutines and returns
// the first error, after which no new calls start.
func runPool(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		wg       sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || firstErr != nil || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil && next < n {
		return context.Cause(ctx)
	}
	return firstErr
}

// snapshot is the state of every counter at one moment.
type snapshot struct {
	at        time.Time
	api       apiCounts
	own       map[string]int
	ownFailed map[string]int
	csi       map[string]int
	dupPub    int
	dupUnpub  int
	cpu       float64 // the attacher's CPU seconds so far
	heap      heapCounts
	sysBusy   uint64
	sysTotal  uint64
}

func (b *bench) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now()}
	api, err := scrapeAPIServer(ctx, b.httpClient, b.restCfg.Host)
	if err != nil {
		return s, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	s.api = api
	s.own, s.ownFailed = b.own.snapshot()
	s.csi, _, s.dupPub, s.dupUnpub = b.csi.totals()
	if b.att != nil {
		s.cpu, _ = cpuSeconds(b.att.pid())
		s.heap = scrapeHeap(ctx, b.metricsURL)
	}
	s.sysBusy, s.sysTotal, _ = systemCPU()
	return s, nil
}

func (b *bench) phaseResult(p phaseSpec, took time.Duration, before, after snapshot) phaseResult {
	d := diffRequests(before.api, after.api, subtractCounts(after.own, before.own), subtractCounts(after.ownFailed, before.ownFailed))
	res := phaseResult{
		Name:               p.name,
		Seconds:            seconds(took),
		Ops:                p.ops,
		Writes:             sumCounts(d.writes),
		WritesByRequest:    d.writes,
		FailedWrites:       sumCounts(d.failed),
		FailedByRequest:    d.failed,
		BackgroundWrites:   d.background,
		Reads:              sumCounts(d.reads),
		ReadsByRequest:     d.reads,
		TerminatedWatchers: d.terminated,
		CSICalls:           subtractCounts(after.csi, before.csi),
		DuplicatePublish:   after.dupPub - before.dupPub,
		DuplicateUnpublish: after.dupUnpub - before.dupUnpub,
		AttacherCPUSeconds: round3(after.cpu - before.cpu),
		Latency:            computeLatency(p.latencies()),
		OwnRequests:        map[string]int{p.ownWrites: subtractCounts(after.own, before.own)[p.ownWrites]},
		Warnings:           d.warnings,
	}
	res.WritesPerOp = round3(float64(res.Writes) / float64(p.ops))
	res.AttacherCPUPer1000 = per1000(res.AttacherCPUSeconds, p.ops)
	if before.heap.ok && after.heap.ok {
		res.AllocMiBPer1000 = per1000((after.heap.bytes-before.heap.bytes)/(1<<20), p.ops)
		res.AllocObjectsPer1000 = per1000(after.heap.objects-before.heap.objects, p.ops)
	}
	if total := after.sysTotal - before.sysTotal; total > 0 {
		res.SystemCPUBusyPercent = round1(100 * float64(after.sysBusy-before.sysBusy) / float64(total))
	}
	return res
}

// setupPhase records an unmeasured phase (only its duration).
func (b *bench) setupPhase(name string, took time.Duration, note string) {
	b.rep.Setup = append(b.rep.Setup, setupResult{Name: name, Seconds: seconds(took), Note: note})
}

// defer_ registers a cleanup step; cleanup runs them in reverse order.
func (b *bench) defer_(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) cleanup(ok bool) {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	if b.tmpDir == "" {
		return
	}
	if ok && !b.cfg.keep {
		_ = os.RemoveAll(b.tmpDir)
		return
	}
	b.printf("kept %s (kubeconfig, attacher log)", b.tmpDir)
}

// failure describes the error and, if the attacher ran, shows the end of
// its log.
func (b *bench) failure(err error) string {
	if errors.Is(err, errInterrupted) {
		return "benchmark interrupted\n"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "BENCHMARK FAILED: %v\n", err)
	if b.att == nil {
		return sb.String()
	}
	fmt.Fprintf(&sb, "attacher log: %s\n", b.logPath)
	lines, rerr := testbed.Tail(b.logPath, logTail)
	if rerr != nil {
		fmt.Fprintf(&sb, "  (could not read the attacher log: %v)\n", rerr)
		return sb.String()
	}
	fmt.Fprintf(&sb, "last %d lines of the attacher log:\n", len(lines))
	for _, l := range lines {
		fmt.Fprintf(&sb, "  %s\n", l)
	}
	fmt.Fprintf(&sb, "BENCHMARK FAILED: %v\n", err)
	return sb.String()
}

// printf prints one line to stdout.
func (b *bench) printf(format string, args ...any) {
	b.out.Lock()
	defer b.out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// machineInfo describes this machine and its load now.
func machineInfo() machine {
	return machine{
		CPUs:         runtime.NumCPU(),
		MemTotalMiB:  memTotalMiB(),
		GOOS:         runtime.GOOS,
		GOARCH:       runtime.GOARCH,
		GoVersion:    runtime.Version(),
		LoadAvgStart: loadAvg(),
	}
}
