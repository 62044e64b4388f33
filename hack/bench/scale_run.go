package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

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
