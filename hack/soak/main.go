package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

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

// startAttacher starts the attacher and waits for its /readyz.
func (s *soak) startAttacher(ctx context.Context, bin, kubeconfig string) (*testbed.Attacher, error) {
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return nil, err
	}
	s.metricsURL = endpoints.MetricsURL()
	s.log = filepath.Join(s.tmp, "attacher.log")
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	args := slices.Concat([]string{
		"--csi-address=" + s.socket,
		"--kubeconfig=" + kubeconfig,
	}, endpoints.Flags(), []string{
		"--leader-election=false",
		"--timeout=2s",
		"--retry-interval-start=100ms",
		"--retry-interval-max=2s",
		"--worker-threads=20",
		"--v=" + map[bool]string{true: "1", false: "2"}[s.cfg.churn > 0],
	})
	att, err := testbed.StartAttacher(bin, args, logFile)
	if err != nil {
		return nil, err
	}
	readyz := endpoints.ReadyzURL()
	deadline := time.Now().Add(time.Minute)
	for !testbed.Ready(readyz) {
		select {
		case <-att.Done():
			return nil, fmt.Errorf("%w: %s (log %s)", errAttacherExited, testbed.ExitStatus(att.Err()), s.log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			att.Stop(attacherStopTimeout)
			return nil, fmt.Errorf("csi-attacher was not ready at %s (log %s)", readyz, s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("csi-attacher ready (log %s)", s.log)
	return att, nil
}

func (s *soak) startInformer(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(s.cs, 0)
	inf := factory.Storage().V1().VolumeAttachments().Informer()
	update := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		va, ok := obj.(*storagev1.VolumeAttachment)
		if !ok {
			return
		}
		s.mu.Lock()
		if deleted {
			delete(s.vas, va.Name)
		} else {
			s.vas[va.Name] = va
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { update(o, false) },
		UpdateFunc: func(_, o any) { update(o, false) },
		DeleteFunc: func(o any) { update(o, true) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return errors.New("the VolumeAttachment informer did not sync")
	}
	return nil
}

// waitFor waits until cond holds for the informer's copy of VA name (nil
// when there is none), or until ctx ends or timeout passes.
func (s *soak) waitFor(ctx context.Context, name string, timeout time.Duration, cond func(*storagev1.VolumeAttachment) bool) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.vas[name])
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func pvName(i int) string    { return fmt.Sprintf("soak-pv-%d", i) }
func handle(i int) string    { return fmt.Sprintf("soak-vol-%d", i) }
func vaName(i, c int) string { return fmt.Sprintf("soak-va-%d-%d", i, c) }

func (s *soak) createObjects(ctx context.Context) error {
	csiNode := testbed.CSINode(nodeName, storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID})
	if _, err := s.cs.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return err
	}
	for i := range s.cfg.n {
		pv := testbed.PV(pvName(i), driverName, handle(i))
		if _, err := s.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	logf("created 1 CSINode and %d PersistentVolumes", s.cfg.n)
	return nil
}

func newVA(name string, i int) *storagev1.VolumeAttachment {
	return testbed.VA(name, driverName, nodeName, pvName(i))
}

// cycle attaches and detaches slot i until ctx ends; an even slot then
// leaves one VolumeAttachment live.
func (s *soak) cycle(ctx context.Context, i int) {
	rng := rand.New(rand.NewPCG(s.cfg.seed, uint64(i)))
	bg := context.WithoutCancel(ctx)
	for c := 0; ctx.Err() == nil; c++ {
		name := vaName(i, c)
		if _, err := s.cs.StorageV1().VolumeAttachments().Create(bg, newVA(name, i), metav1.CreateOptions{}); err != nil {
			logf("warning: creating %s: %v", name, err)
			time.Sleep(time.Second)
			continue
		}
		if rng.IntN(5) == 0 {
			// Delete mid-attach.
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			s.earlyDeletes.Add(1)
		} else {
			s.waitFor(bg, name, 30*time.Second, func(va *storagev1.VolumeAttachment) bool { return va != nil && va.Status.Attached })
		}
		if ctx.Err() != nil && i%2 == 0 {
			// The live one this slot keeps.
			return
		}
		if err := s.cs.StorageV1().VolumeAttachments().Delete(bg, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			logf("warning: deleting %s: %v", name, err)
		}
		// Faults may hold a detach for a while; a slot moves on after 30 s
		// and the check at the end finds whatever is really stuck.
		s.waitFor(bg, name, 30*time.Second, func(va *storagev1.VolumeAttachment) bool { return va == nil })
		s.cycles.Add(1)
	}
	if i%2 == 0 {
		// Stopped between cycles: keep one live attachment anyway.
		if _, err := s.cs.StorageV1().VolumeAttachments().Create(bg, newVA(vaName(i, 1<<20), i), metav1.CreateOptions{}); err != nil {
			logf("warning: creating the final VA of slot %d: %v", i, err)
		}
	}
}

func (s *soak) injectFaults(ctx context.Context) {
	rng := rand.New(rand.NewPCG(s.cfg.seed, 1<<32))
	tick := time.NewTicker(s.cfg.faultInterval)
	defer tick.Stop()
	restart := time.NewTicker(s.cfg.restartEvery)
	defer restart.Stop()
	var spikes sync.WaitGroup
	defer spikes.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-restart.C:
			s.driver.Stop()
			s.restarts.Add(1)
			logf("driver stopped (restart %d)", s.restarts.Load())
			time.Sleep(time.Second)
			if err := s.driver.Start(s.socket); err != nil {
				logf("warning: restarting the driver: %v", err)
			}
		case <-tick.C:
			method := fake.MethodPublish
			if rng.IntN(2) == 0 {
				method = fake.MethodUnpublish
			}
			vol := handle(rng.IntN(s.cfg.n))
			switch p := rng.IntN(100); {
			case p < 60:
				s.driver.InjectError(method, vol, codes.Code(1+rng.IntN(16)), 1+rng.IntN(3))
				s.faults.Add(1)
			case p < 80:
				s.driver.InjectErrorAfter(method, vol, codes.Code(1+rng.IntN(16)), 1+rng.IntN(3))
				s.faults.Add(1)
			default:
				d := time.Duration(rng.Int64N(int64(3 * time.Second)))
				s.driver.SetLatency(method, vol, d)
				s.spikes.Add(1)
				s.faults.Add(1)
				spikes.Go(func() {
					time.Sleep(5 * time.Second)
					s.driver.SetLatency(method, vol, 0)
				})
			}
		}
	}
}

// check waits for convergence and counts what went wrong.
func (s *soak) check(ctx context.Context) (bool, error) {
	list := func() ([]storagev1.VolumeAttachment, error) {
		l, err := s.cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	// Live: even slots' last VA, not being deleted. Everything else is
	// being deleted and must go.
	deadline := time.Now().Add(s.cfg.converge)
	var vas []storagev1.VolumeAttachment
	var err error
	for {
		vas, err = list()
		if err != nil {
			return false, err
		}
		pending := 0
		for _, va := range vas {
			if va.DeletionTimestamp != nil || !va.Status.Attached {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	// Deleted VAs get stuckAfter from their deletion (or from now, at least
	// the convergence time has passed already).
	stuckVAs := 0
	unconverged := 0
	live := map[string]storagev1.VolumeAttachment{} // by volume handle
	for _, va := range vas {
		if va.DeletionTimestamp != nil {
			if time.Since(va.DeletionTimestamp.Time) > stuckAfter {
				stuckVAs++
				logf("stuck: VolumeAttachment %s deleted %s ago, finalizers %v, detachError %v", va.Name,
					time.Since(va.DeletionTimestamp.Time).Round(time.Second), va.Finalizers, va.Status.DetachError)
			} else {
				unconverged++
			}
			continue
		}
		var i, c int
		if _, err := fmt.Sscanf(va.Name, "soak-va-%d-%d", &i, &c); err != nil {
			continue
		}
		live[handle(i)] = va
		if !va.Status.Attached {
			unconverged++
			logf("unconverged: VolumeAttachment %s not attached, attachError %v", va.Name, va.Status.AttachError)
		}
	}
	pubs := s.driver.Publications()
	leaked, mismatched := 0, 0
	for vol, nodes := range pubs {
		va, ok := live[vol]
		if !ok || !va.Status.Attached {
			leaked++
			logf("leaked publication: %s on %v without a live attached VA", vol, nodes)
		}
	}
	for vol, va := range live {
		published := slices.Contains(pubs[vol], nodeID)
		if va.Status.Attached != published {
			mismatched++
			logf("mismatch: VA %s attached=%v, driver published=%v", va.Name, va.Status.Attached, published)
		}
	}

	// Last: delete everything and wait for it to go.
	for _, va := range vas {
		if va.DeletionTimestamp == nil {
			_ = s.cs.StorageV1().VolumeAttachments().Delete(ctx, va.Name, metav1.DeleteOptions{})
		}
	}
	for i := range s.cfg.n {
		_ = s.cs.CoreV1().PersistentVolumes().Delete(ctx, pvName(i), metav1.DeleteOptions{})
	}
	stuckPVs := 0
	deadline = time.Now().Add(stuckAfter)
	for {
		vas, err = list()
		if err != nil {
			return false, err
		}
		pvs, err := s.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if (len(vas) == 0 && len(pvs.Items) == 0) || time.Now().After(deadline) {
			stuckPVs = len(pvs.Items)
			for _, pv := range pvs.Items {
				logf("stuck: PersistentVolume %s, finalizers %v", pv.Name, pv.Finalizers)
			}
			if stuckVAs == 0 {
				stuckVAs = len(vas)
			}
			for _, va := range vas {
				logf("stuck: VolumeAttachment %s, finalizers %v", va.Name, va.Finalizers)
			}
			break
		}
		time.Sleep(time.Second)
	}
	finalLeaks := len(s.driver.Publications())
	if finalLeaks > leaked {
		leaked = finalLeaks
	}

	var failedCalls int
	for _, c := range s.driver.Calls() {
		if c.Code != codes.OK && (c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish) {
			failedCalls++
		}
	}
	fmt.Println()
	fmt.Println("SOAK RESULTS")
	fmt.Printf("  cycles (attach+detach)          %d\n", s.cycles.Load())
	fmt.Printf("  deleted mid-attach              %d\n", s.earlyDeletes.Load())
	fmt.Printf("  faults injected                 %d (latency spikes %d)\n", s.faults.Load(), s.spikes.Load())
	fmt.Printf("  driver restarts                 %d\n", s.restarts.Load())
	fmt.Printf("  failed Publish/Unpublish calls  %d\n", failedCalls)
	fmt.Printf("  live VAs checked                %d\n", len(live))
	fmt.Printf("  leaked publications             %d\n", leaked)
	fmt.Printf("  stuck finalizers (VAs)          %d\n", stuckVAs)
	fmt.Printf("  stuck finalizers (PVs)          %d\n", stuckPVs)
	fmt.Printf("  status/driver mismatches        %d\n", mismatched)
	fmt.Printf("  unconverged live VAs            %d\n", unconverged)
	bad := leaked+stuckVAs+stuckPVs+mismatched+unconverged > 0
	if bad {
		fmt.Println("SOAK FAILED")
	} else {
		fmt.Println("SOAK PASSED")
	}
	return bad, nil
}
