package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// ---------------------------------------------------------------------------
// Control plane and driver.

// startControlPlane starts kube-apiserver and etcd, writes a kubeconfig for
// the attacher and builds the benchmark's clients.
func (b *bench) startControlPlane(ctx context.Context) error {
	assets, err := testbed.AssetsDir("bench")
	if err != nil {
		return err
	}
	b.printf("==> starting the control plane (kube-apiserver and etcd from %s)", assets)
	env := testbed.NewEnvironment(assets, 2*time.Minute)
	env.ControlPlane.GetAPIServer().Configure().
		// Room for a burst of N creates and the attacher's writes; with
		// priority and fairness on (the default) the two limits are the
		// server's total concurrency.
		Set("max-requests-inflight", "3000").
		Set("max-mutating-requests-inflight", "1000")
	began := time.Now()
	cfg, err := env.Start()
	// Stop also cleans up after a partial start.
	b.defer_(func() {
		if err := env.Stop(); err != nil {
			b.printf("warning: stopping the control plane: %v", err)
		}
	})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	b.kubeconfig = filepath.Join(b.tmpDir, "kubeconfig")
	if err := testbed.WriteKubeconfig(env, "csi-attacher", b.kubeconfig); err != nil {
		return err
	}

	b.restCfg = rest.CopyConfig(cfg)
	b.restCfg.QPS = clientQPS
	b.restCfg.Burst = clientBurst
	b.restCfg.UserAgent = "csi-attacher-bench"
	b.restCfg.ContentType = "application/vnd.kubernetes.protobuf"
	b.restCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if b.cs, err = kubernetes.NewForConfig(b.restCfg); err != nil {
		return fmt.Errorf("creating the API client: %w", err)
	}
	if b.httpClient, err = rest.HTTPClientFor(cfg); err != nil {
		return fmt.Errorf("creating the HTTP client for /metrics: %w", err)
	}
	took := time.Since(began)
	b.printf("    control plane ready at %s after %.1f s", cfg.Host, took.Seconds())
	b.setupPhase("control plane", took, "")
	return nil
}

// startDriver serves the fake CSI driver in this process.
func (b *bench) startDriver() error {
	socket := filepath.Join(b.tmpDir, testbed.SocketName)
	cfg := fake.DefaultConfig(driverName)
	cfg.OnCall = b.csi.onCall
	b.driver = fake.New(cfg)
	if err := b.serveDriver(socket); err != nil {
		return err
	}
	b.printf("==> fake CSI driver %s serving on %s", driverName, socket)
	return nil
}

// serveDriver gives b.driver the configured latencies and serves it on
// socket until the benchmark ends.
func (b *bench) serveDriver(socket string) error {
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

// ---------------------------------------------------------------------------
// Objects.

// createObjects creates the CSINode, the N PersistentVolumes and the objects
// of the other driver.
func (b *bench) createObjects(ctx context.Context) error {
	m := b.cfg.otherObjects
	note := fmt.Sprintf("1 CSINode, %d PVs", b.cfg.n)
	if m > 0 {
		note += fmt.Sprintf(", %d PVs and %d VAs of %s", m, m, otherDriverName)
	}
	b.printf("==> creating %s", note)
	began := time.Now()
	csiNode := testbed.CSINode(nodeName,
		storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID},
		storagev1.CSINodeDriver{Name: otherDriverName, NodeID: "other-" + nodeID})
	if err := b.call(ctx, "POST csinodes", func(ctx context.Context) error {
		_, err := b.cs.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	var created atomic.Int64
	ops := b.cfg.n + 2*m
	act := func(ctx context.Context, i int) error {
		var err error
		switch {
		case i < b.cfg.n:
			err = b.createPV(ctx, testbed.PV(pvName(i), driverName, volumePrefix+suffix(i)))
		case i < b.cfg.n+m:
			j := i - b.cfg.n
			err = b.createPV(ctx, testbed.PV(otherPVPrefix+suffix(j), otherDriverName, "other-vol-"+suffix(j)))
		default:
			j := i - b.cfg.n - m
			err = b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
				_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx,
					testbed.VA(otherVAPrefix+suffix(j), otherDriverName, nodeName, otherPVPrefix+suffix(j)), metav1.CreateOptions{})
				return err
			})
		}
		if err == nil {
			created.Add(1)
		}
		return err
	}
	if _, err := b.runAndWait(ctx, "create", "created", ops, act, func() int { return int(created.Load()) }); err != nil {
		return err
	}
	took := time.Since(began)
	b.printf("    created %d objects in %.1f s", ops+1, took.Seconds())
	b.setupPhase("create objects", took, note)
	return nil
}

func (b *bench) createPV(ctx context.Context, pv *corev1.PersistentVolume) error {
	return b.call(ctx, "POST persistentvolumes", func(ctx context.Context) error {
		_, err := b.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
		return err
	})
}

// createVA creates the i-th VolumeAttachment, noting the time just before.
func (b *bench) createVA(ctx context.Context, i int) error {
	b.objs.va[i].created.CompareAndSwap(0, time.Now().UnixNano())
	return b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
		_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, testbed.VA(vaName(i), driverName, nodeName, pvName(i)), metav1.CreateOptions{})
		return err
	})
}

func (b *bench) deleteVA(ctx context.Context, i int) error {
	b.objs.va[i].deleteSent.CompareAndSwap(0, time.Now().UnixNano())
	return b.call(ctx, "DELETE volumeattachments", func(ctx context.Context) error {
		return b.cs.StorageV1().VolumeAttachments().Delete(ctx, vaName(i), metav1.DeleteOptions{})
	})
}

func (b *bench) deletePV(ctx context.Context, i int) error {
	b.objs.pv[i].deleteSent.CompareAndSwap(0, time.Now().UnixNano())
	return b.call(ctx, "DELETE persistentvolumes", func(ctx context.Context) error {
		return b.cs.CoreV1().PersistentVolumes().Delete(ctx, pvName(i), metav1.DeleteOptions{})
	})
}

// call sends one of the benchmark's requests, retrying transient failures,
// and counts every attempt that reached the API server, so that it can be
// told apart from the attacher's requests in the server's metrics. kind is
// "VERB resource", as in those metrics.
func (b *bench) call(ctx context.Context, kind string, f func(context.Context) error) error {
	const attempts = 8
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		b.own.record(kind, err)
		switch {
		case err == nil:
			return nil
		case attempt > 1 && strings.HasPrefix(kind, "POST ") && apierrors.IsAlreadyExists(err):
			return nil // an earlier attempt went through after all
		case strings.HasPrefix(kind, "DELETE ") && apierrors.IsNotFound(err):
			return nil // already gone; the informer has seen or will see it
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case !retryable(err) || attempt == attempts:
			return fmt.Errorf("%s failed (attempt %d): %w", kind, attempt, err)
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func retryable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true // a transport error
	}
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err)
}

func suffix(i int) string { return fmt.Sprintf("%05d", i) }
func vaName(i int) string { return vaPrefix + suffix(i) }
func pvName(i int) string { return pvPrefix + suffix(i) }
func parseIndex(name, prefix string, n int) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

// ownRequests counts the benchmark's own requests by "VERB resource".
type ownRequests struct {
	mu     sync.Mutex
	total  map[string]int
	failed map[string]int
}

func newOwnRequests() *ownRequests {
	return &ownRequests{total: map[string]int{}, failed: map[string]int{}}
}

// record counts a request that got an answer from the API server; a
// transport error may not have reached it and is not counted.
func (o *ownRequests) record(kind string, err error) {
	var status apierrors.APIStatus
	if err != nil && !errors.As(err, &status) {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total[kind]++
	if err != nil {
		o.failed[kind]++
	}
}

func (o *ownRequests) snapshot() (total, failed map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.total), maps.Clone(o.failed)
}

// ---------------------------------------------------------------------------
// Observation.

// tracker is what the informers have seen of the benchmark's objects. Times
// are unix nanoseconds, 0 until they happen.
type tracker struct {
	va []vaItem
	pv []pvItem

	attached, vaGone, pvGone             atomic.Int64
	lastAttached, lastVAGone, lastPVGone atomic.Int64
	attachErrors, detachErrors           atomic.Int64
}

type vaItem struct {
	created, attached, deleteSent, gone atomic.Int64
	attachErr, detachErr                atomic.Bool
}

type pvItem struct {
	deleteSent, gone atomic.Int64
}

func newTracker(n int) *tracker {
	return &tracker{va: make([]vaItem, n), pv: make([]pvItem, n)}
}

func (t *tracker) onVA(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	va, ok := obj.(*storagev1.VolumeAttachment)
	if !ok {
		return
	}
	i, ok := parseIndex(va.Name, vaPrefix, len(t.va))
	if !ok {
		return
	}
	now := time.Now().UnixNano()
	it := &t.va[i]
	if deleted {
		if it.gone.CompareAndSwap(0, now) {
			t.vaGone.Add(1)
			storeMax(&t.lastVAGone, now)
		}
		return
	}
	if va.Status.Attached && it.attached.CompareAndSwap(0, now) {
		t.attached.Add(1)
		storeMax(&t.lastAttached, now)
	}
	if va.Status.AttachError != nil && it.attachErr.CompareAndSwap(false, true) {
		t.attachErrors.Add(1)
	}
	if va.Status.DetachError != nil && it.detachErr.CompareAndSwap(false, true) {
		t.detachErrors.Add(1)
	}
}

func (t *tracker) onPVDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return
	}
	i, ok := parseIndex(pv.Name, pvPrefix, len(t.pv))
	if !ok {
		return
	}
	now := time.Now().UnixNano()
	if t.pv[i].gone.CompareAndSwap(0, now) {
		t.pvGone.Add(1)
		storeMax(&t.lastPVGone, now)
	}
}

func (t *tracker) attachLatencies() []time.Duration {
	out := make([]time.Duration, 0, len(t.va))
	for i := range t.va {
		if c, a := t.va[i].created.Load(), t.va[i].attached.Load(); c != 0 && a != 0 {
			out = append(out, time.Duration(a-c))
		}
	}
	return out
}

func (t *tracker) detachLatencies() []time.Duration {
	out := make([]time.Duration, 0, len(t.va))
	for i := range t.va {
		if s, g := t.va[i].deleteSent.Load(), t.va[i].gone.Load(); s != 0 && g != 0 {
			out = append(out, time.Duration(g-s))
		}
	}
	return out
}

func (t *tracker) releaseLatencies() []time.Duration {
	out := make([]time.Duration, 0, len(t.pv))
	for i := range t.pv {
		if s, g := t.pv[i].deleteSent.Load(), t.pv[i].gone.Load(); s != 0 && g != 0 {
			out = append(out, time.Duration(g-s))
		}
	}
	return out
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// startInformers lists and watches VolumeAttachments and PersistentVolumes.
func (b *bench) startInformers(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(b.cs, 0,
		informers.WithTransform(func(obj any) (any, error) {
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	t := b.objs
	vaInformer := factory.Storage().V1().VolumeAttachments().Informer()
	if _, err := vaInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.onVA(obj, false) },
		UpdateFunc: func(_, obj any) { t.onVA(obj, false) },
		DeleteFunc: func(obj any) { t.onVA(obj, true) },
	}); err != nil {
		return err
	}
	pvInformer := factory.Core().V1().PersistentVolumes().Informer()
	if _, err := pvInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: t.onPVDeleted}); err != nil {
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
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("the informer for %v did not sync", typ)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// CSI calls.

// csiTracker counts the driver's calls and the duplicates among them.
type csiTracker struct {
	mu           sync.Mutex
	calls        map[string]int
	failed       map[string]int
	published    map[[2]string]bool // (volume, node) pairs
	dupPublish   int
	dupUnpublish int
}

func newCSITracker() *csiTracker {
	return &csiTracker{calls: map[string]int{}, failed: map[string]int{}, published: map[[2]string]bool{}}
}

// onCall runs after every call the driver answers.
func (t *csiTracker) onCall(c fake.Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls[c.Method]++
	if c.Code != codes.OK {
		t.failed[c.Method]++
		return
	}
	switch dupPublish, dupUnpublish := recordPublication(t.published, c); {
	case dupPublish:
		t.dupPublish++
	case dupUnpublish:
		t.dupUnpublish++
	}
}

// recordPublication applies a successful Publish or Unpublish call to
// published, the (volume, node) pairs published now, and tells whether it
// was a duplicate: a Publish of a pair already published, or an Unpublish
// of one that is not.
func recordPublication(published map[[2]string]bool, c fake.Call) (dupPublish, dupUnpublish bool) {
	pair := [2]string{c.VolumeID, c.NodeID}
	switch c.Method {
	case fake.MethodPublish:
		dupPublish = published[pair]
		published[pair] = true
	case fake.MethodUnpublish:
		dupUnpublish = !published[pair]
		delete(published, pair)
	}
	return dupPublish, dupUnpublish
}

func (t *csiTracker) totals() (calls, failed map[string]int, dupPublish, dupUnpublish int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.calls), maps.Clone(t.failed), t.dupPublish, t.dupUnpublish
}
