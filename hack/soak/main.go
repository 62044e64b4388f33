package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

const (
	driverName = "soak.csi.example.com"
	nodeName   = "soak-node"
	nodeID     = "soak-node-id"
	stuckAfter = 60 * time.Second
	// attacherStopTimeout is how long the attacher gets to exit after SIGTERM.
	attacherStopTimeout = 30 * time.Second
)

// errAttacherExited ends the soak when the attacher exits on its own.
var errAttacherExited = errors.New("csi-attacher exited during the soak")

type config struct {
	duration, restartEvery, faultInterval, converge time.Duration
	n                                               int
	seed                                            uint64
	keep                                            bool
	// churn, when positive, runs that many fault-free cycles instead and
	// checks memory (see churn).
	churn    int
	sample   time.Duration
	rssSlack float64
}

type soak struct {
	cfg    config
	cs     kubernetes.Interface
	driver *fake.Driver
	socket string
	tmp    string
	log    string // the attacher's log
	// metricsURL is the attacher's /metrics.
	metricsURL string

	mu      sync.Mutex
	vas     map[string]*storagev1.VolumeAttachment // from the informer
	changed chan struct{}                          // closed and replaced on every change

	cycles, earlyDeletes, faults, restarts, spikes atomic.Int64
}

func main() {
	os.Exit(run())
}

func run() int {
	var c config
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	fs.DurationVar(&c.duration, "duration", 3*time.Minute, "how long to cycle with faults")
	fs.IntVar(&c.n, "n", 200, "volumes cycling in parallel")
	fs.DurationVar(&c.restartEvery, "restart-every", 30*time.Second, "driver restart period")
	fs.DurationVar(&c.faultInterval, "fault-interval", 100*time.Millisecond, "time between fault injections")
	fs.DurationVar(&c.converge, "converge", 2*time.Minute, "time allowed to converge after the faults stop")
	fs.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory")
	fs.IntVar(&c.churn, "churn", 0, "run this many fault-free create/attach/detach/delete cycles (a new PV and VA each) and check that memory stays flat, instead of the fault soak")
	fs.DurationVar(&c.sample, "sample", 10*time.Second, "with -churn: how often to read the attacher's RSS and map sizes")
	fs.Float64Var(&c.rssSlack, "rss-slack", 16, "with -churn: MiB of anonymous RSS the attacher may gain after the warm-up")
	_ = fs.Parse(os.Args[1:])
	if c.n <= 0 || c.duration <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -n and -duration must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &soak{cfg: c, vas: map[string]*storagev1.VolumeAttachment{}, changed: make(chan struct{})}
	bad, err := s.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if bad {
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (s *soak) run(ctx context.Context) (bad bool, err error) {
	assets, err := testbed.AssetsDir("soak")
	if err != nil {
		return false, err
	}
	s.tmp, err = testbed.TempDir("csi-soak")
	if err != nil {
		return false, err
	}
	defer func() {
		// The error of a crash names the attacher's log: keep it.
		if !s.cfg.keep && !errors.Is(err, errAttacherExited) {
			_ = os.RemoveAll(s.tmp)
		}
	}()
	if s.cfg.churn > 0 {
		logf("churn: %d cycles on %d slots, temporary directory %s", s.cfg.churn, s.cfg.n, s.tmp)
	} else {
		logf("seed %d, %d volumes, %s of faults, temporary directory %s", s.cfg.seed, s.cfg.n, s.cfg.duration, s.tmp)
	}

	// Build the attacher while the control plane starts.
	root, err := testbed.RepoRoot()
	if err != nil {
		return false, err
	}
	bin := filepath.Join(s.tmp, "csi-attacher")
	build := testbed.BuildAttacher(ctx, root, bin)

	env := testbed.NewEnvironment(assets, 2*time.Minute)
	env.ControlPlane.GetAPIServer().Configure().
		Set("max-requests-inflight", "3000").
		Set("max-mutating-requests-inflight", "1000")
	restCfg, err := env.Start()
	defer func() {
		if err := env.Stop(); err != nil {
			logf("warning: stopping the control plane: %v", err)
		}
	}()
	if err != nil {
		return false, fmt.Errorf("starting the control plane (is KUBEBUILDER_ASSETS set? `make soak` sets it): %w", err)
	}
	kcPath := filepath.Join(s.tmp, "kubeconfig")
	if err := testbed.WriteKubeconfig(env, "csi-attacher", kcPath); err != nil {
		return false, err
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.QPS, restCfg.Burst = 500, 1000
	if s.cs, err = kubernetes.NewForConfig(restCfg); err != nil {
		return false, err
	}
	if _, err := build(); err != nil {
		return false, err
	}

	s.socket = filepath.Join(s.tmp, testbed.SocketName)
	s.driver = fake.New(fake.DefaultConfig(driverName))
	if err := s.driver.Start(s.socket); err != nil {
		return false, err
	}
	defer s.driver.Stop()

	att, err := s.startAttacher(ctx, bin, kcPath)
	if err != nil {
		return false, err
	}
	defer att.Stop(attacherStopTimeout)

	// The attacher must never exit on its own: a crash is a failure. It
	// ends ctx with errAttacherExited, which stops the soak and becomes its
	// error. On the way out ctx ends (crash(nil)) before the deferred Stop.
	ctx, crash := context.WithCancelCause(ctx)
	defer crash(nil)
	go func() {
		select {
		case <-att.Done():
			crash(fmt.Errorf("%w: %s (log %s)", errAttacherExited, testbed.ExitStatus(att.Err()), s.log))
		case <-ctx.Done():
		}
	}()
	defer func() {
		// Whatever failed after a crash failed because of it.
		if cause := context.Cause(ctx); errors.Is(cause, errAttacherExited) {
			bad, err = false, cause
		}
	}()

	if err := s.startInformer(ctx); err != nil {
		return false, err
	}
	if s.cfg.churn > 0 {
		return s.churn(ctx, att)
	}
	if err := s.createObjects(ctx); err != nil {
		return false, err
	}

	// Cycles and faults for the duration.
	cycleCtx, stopCycles := context.WithTimeout(ctx, s.cfg.duration)
	defer stopCycles()
	var faultsDone sync.WaitGroup
	faultsDone.Go(func() { s.injectFaults(cycleCtx) })
	var wg sync.WaitGroup
	for i := range s.cfg.n {
		wg.Go(func() { s.cycle(cycleCtx, i) })
	}
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	go func() {
		for {
			select {
			case <-cycleCtx.Done():
				return
			case <-progress.C:
				logf("cycles %d, faults %d, latency spikes %d, driver restarts %d", s.cycles.Load(), s.faults.Load(), s.spikes.Load(), s.restarts.Load())
			}
		}
	}()
	cyclesDone := make(chan struct{})
	go func() {
		wg.Wait()
		faultsDone.Wait()
		close(cyclesDone)
	}()
	select {
	case <-cyclesDone:
	case <-ctx.Done():
		// The cycles may wait on the attacher for up to a minute more; the
		// faults stop at once.
		faultsDone.Wait()
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}

	// Calm: no more faults, the driver up.
	s.driver.ClearFaults()
	if err := s.driver.Start(s.socket); err != nil && !errors.Is(err, fake.ErrAlreadyServing) {
		return false, err
	}
	logf("faults stopped; even slots keep a live VolumeAttachment, odd slots none")
	return s.check(ctx)
}
