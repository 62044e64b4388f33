package leader

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// syncTimeout bounds how long the first read of the Lease waits for the
// watch to be established. Later reads never wait for it: without the
// watch a standby falls back to client-go's plain polling, and the
// leader's own reads (a renewal's slow path, the release) must not spend
// its renew deadline on a watch that cannot sync.
const syncTimeout = 10 * time.Second

// Options configure NewLock.
type Options struct {
	// Config is the API server configuration; the lock uses clients of its
	// own, with the user agent "leader-election".
	Config *rest.Config
	// Namespace and Name locate the Lease.
	Namespace, Name string
	// Labels are put on the Lease when it is created.
	Labels map[string]string
	// RenewDeadline bounds each request, as controller-runtime does: one
	// hung request must not cost the leader its Lease.
	RenewDeadline time.Duration
	// NoWatch turns the watch of the Lease off, for a service account
	// without list and watch on Leases: every read is then a plain GET,
	// and a standby notices a release at its next retry, as client-go's
	// own lock does, instead of at once.
	NoWatch bool
	// Fence, when set, is told of every renewal and takeover (see Fence).
	Fence *Fence
	// LeaseDuration is --leader-election-lease-duration, for Check.
	LeaseDuration time.Duration
	// Grace is Check's tolerance past LeaseDuration; DefaultGrace when
	// zero.
	Grace time.Duration
}

// Lock is a resourcelock.Interface for a Lease whose Get, in a standby,
// waits for the Lease to be released or to expire, that tells its Fence of
// every renewal and takeover, and whose Check is /healthz/leader-election
// (see the package documentation). Use it as manager.Options.
// LeaderElectionResourceLockInterface.
type Lock struct {
	resourcelock.Interface

	events   record.EventBroadcaster
	informer cache.Controller // nil without the watch
	fence    *Fence

	mu      sync.Mutex
	lease   leaseState
	changed chan struct{} // closed and replaced on every change of lease
	waiting int           // Gets waiting for a release
	synced  bool          // the first Get has waited for the watch
	// seen is the record this process saw last, by the watch or a Get, and
	// when it first saw it; got is the one the last Get returned.
	seen, got recordSeen
	// acquired maps the acquire time client-go computed before a Get that
	// waited to the time the Lease was really taken (see Update).
	acquiredAsked, acquiredAt metav1.Time
	// leading and renewed are what Check judges: whether this replica
	// leads, and when it last renewed (see health.go).
	leading bool
	renewed time.Time
	// leaseDuration and grace are Options.LeaseDuration and Grace.
	leaseDuration, grace time.Duration

	now func() time.Time
}

// leaseState is what the watch last saw of the Lease.
type leaseState struct {
	known    bool // the watch is synced and the Lease exists
	holder   string
	duration time.Duration
	raw      string // the record, serialised as resourcelock.LeaseLock does
}

// recordSeen is one version of the leader-election record and the moment
// this process first saw it. As in client-go, a lease is valid for its
// duration from then, on this process's clock: the holder renewed it no
// later than that, whatever the clocks of the two machines say.
type recordSeen struct {
	raw    string
	holder string
	at     time.Time
}

// NewLock builds the lock with a unique identity (host name and a UUID, as
// controller-runtime's) and, unless o.NoWatch, starts watching the Lease
// until ctx ends. Call Shutdown once the elector has stopped, to flush its
// Events.
func NewLock(ctx context.Context, o Options) (*Lock, error) {
	cfg := rest.AddUserAgent(rest.CopyConfig(o.Config), "leader-election")
	if o.RenewDeadline > 0 {
		cfg.Timeout = max(o.RenewDeadline/2, time.Second)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	id := host + "_" + string(uuid.NewUUID())
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events(o.Namespace)})
	inner, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.Namespace, o.Name,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{
			Identity:      id,
			EventRecorder: events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: id}),
		}, o.Labels)
	if err != nil {
		events.Shutdown()
		return nil, err
	}
	l := newLock(inner)
	l.events = events
	l.fence = o.Fence
	l.leaseDuration, l.grace = o.LeaseDuration, o.Grace
	if o.NoWatch {
		return l, nil
	}
	// The watch gets a client of its own without the request timeout:
	// bounded by half the renew deadline, every watch was cut after a
	// second or a few and started again, and under load its first list did
	// not complete in time, so a standby's first read waited for a sync
	// that kept failing.
	watchCfg := rest.CopyConfig(cfg)
	watchCfg.Timeout = 0
	wcs, err := kubernetes.NewForConfig(watchCfg)
	if err != nil {
		return nil, fmt.Errorf("leader election watch client: %w", err)
	}
	lw := cache.NewFilteredListWatchFromClient(wcs.CoordinationV1().RESTClient(), "leases", o.Namespace,
		func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Name).String()
		})
	_, l.informer = cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &coordinationv1.Lease{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { l.observe(obj) },
			UpdateFunc: func(_, obj any) { l.observe(obj) },
			DeleteFunc: func(any) { l.forget() },
		},
	})
	go func() {
		l.informer.RunWithContext(ctx)
		// A stopped watch sees nothing: no Get may wait on it any more.
		l.forget()
	}()
	return l, nil
}

func newLock(inner resourcelock.Interface) *Lock {
	return &Lock{Interface: inner, changed: make(chan struct{}), now: time.Now}
}

// Shutdown stops sending the lock's Events, after those already recorded.
func (l *Lock) Shutdown() {
	if l.events != nil {
		l.events.Shutdown()
	}
}

// observe records a Lease seen by the watch.
func (l *Lock) observe(obj any) {
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	rec := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	raw, err := json.Marshal(*rec)
	if err != nil {
		return
	}
	st := leaseState{known: true, holder: rec.HolderIdentity, raw: string(raw),
		duration: time.Duration(rec.LeaseDurationSeconds) * time.Second}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Every event is a write of the Lease, so the holder renewed it no
	// later than now, even when the record reads the same: its times are
	// serialised to the second, and two renewals can share one.
	l.seen = recordSeen{raw: st.raw, holder: st.holder, at: l.now()}
	l.setLocked(st)
}

// forget drops what the watch saw: the Lease is gone, or the watch stopped.
func (l *Lock) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(leaseState{})
}

func (l *Lock) setLocked(st leaseState) {
	l.lease = st
	close(l.changed)
	l.changed = make(chan struct{})
}

// sawLocked notes that the record raw was seen now and returns when it was
// first seen.
func (l *Lock) sawLocked(raw, holder string) time.Time {
	if l.seen.raw != raw {
		l.seen = recordSeen{raw: raw, holder: holder, at: l.now()}
	}
	return l.seen.at
}

// Get reads the Lease. While another holder renews it, as far as the watch
// tells, it first waits: for a release, for another change of holder, or
// for the lease to expire. The elector's attempt then finds a Lease it can
// take. The leader's own reads (renew, release) never wait.
//
// client-go counts a lease's duration from the moment its own read first
// returned the record, and it takes the time of the attempt before the
// read: a read that waited would make it count from the end of the wait,
// and a crashed leader would be replaced a whole lease duration late. So
// Get measures the lease from the moment this process first saw the
// record (by the watch, or by an earlier read), and when that has run out
// it returns the record with a lease duration client-go will find expired.
// With or without the watch, a standby thus takes over no later than
// client-go's own lock would, and with the watch exactly one lease
// duration after it saw the last renewal.
func (l *Lock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	start := l.now()
	l.waitForSync(ctx)
	l.waitWhileHeld(ctx)
	rec, raw, err := l.Interface.Get(ctx)
	if err != nil || rec == nil {
		return rec, raw, err
	}
	return l.measure(rec, raw, start)
}

// measure records what a Get returned and, for a record of another holder
// whose lease has run out as this process measures it, tells client-go so.
func (l *Lock) measure(rec *resourcelock.LeaderElectionRecord, raw []byte, start time.Time) (*resourcelock.LeaderElectionRecord, []byte, error) {
	l.mu.Lock()
	at := l.sawLocked(string(raw), rec.HolderIdentity)
	l.got = l.seen
	now := l.now()
	l.mu.Unlock()
	l.sawHolder(rec.HolderIdentity)
	if rec.HolderIdentity != l.Identity() && l.fence != nil {
		l.fence.stop()
	}
	if rec.HolderIdentity == "" || rec.HolderIdentity == l.Identity() {
		return rec, raw, nil
	}
	if now.Before(at.Add(time.Duration(rec.LeaseDurationSeconds) * time.Second)) {
		return rec, raw, nil
	}
	// client-go finds the lease expired when the moment it read the record
	// plus the duration is before the moment its attempt began, which was
	// before this Get (and its wait) started: a negative duration of the
	// wait and two seconds more is before it whatever the rounding.
	expired := *rec
	expired.LeaseDurationSeconds = -int((now.Sub(start)+time.Second-1)/time.Second) - 2
	out, err := json.Marshal(expired)
	if err != nil {
		return rec, raw, nil
	}
	return &expired, out, nil
}

func (l *Lock) waitForSync(ctx context.Context) {
	if l.informer == nil {
		return
	}
	l.mu.Lock()
	first := !l.synced
	l.synced = true
	l.mu.Unlock()
	if !first || l.informer.HasSynced() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	cache.WaitForCacheSync(ctx.Done(), l.informer.HasSynced)
}

func (l *Lock) waitWhileHeld(ctx context.Context) {
	for {
		l.mu.Lock()
		st, changed := l.lease, l.changed
		// A read that returned a record the watch has not delivered means
		// the watch is behind: it cannot tell when the lease runs out, so
		// Get reads at once, as client-go's own lock does.
		if !st.known || st.holder == "" || st.holder == l.Identity() || l.seen.raw != st.raw {
			l.mu.Unlock()
			return
		}
		at := l.seen.at
		l.mu.Unlock()
		left := at.Add(st.duration).Sub(l.now())
		if left <= 0 {
			return
		}
		l.setWaiting(1)
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		l.setWaiting(-1)
		if ctx.Err() != nil {
			return
		}
	}
}

func (l *Lock) setWaiting(d int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting += d
}

// Waiting tells whether a Get is waiting for the Lease to be released: the
// replica is a standby ready to take over at once.
func (l *Lock) Waiting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting > 0
}

// Update writes the record. client-go stamps the acquire and renew times of
// a new acquisition before its Get, which may have waited for minutes: the
// record says when the Lease was really taken instead, and later renewals
// keep that acquire time. A successful write is reported to the Fence.
func (l *Lock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	ler, took := l.stamp(ler)
	err := l.Interface.Update(ctx, ler)
	l.wrote(ler, took, err)
	return err
}

// Create is Update for a Lease that does not exist yet.
func (l *Lock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	ler, _ = l.stamp(ler)
	err := l.Interface.Create(ctx, ler)
	l.wrote(ler, takeover{}, err)
	return err
}

// takeover describes a new acquisition: unclean when the Lease the last
// Get returned named another holder (it expired rather than being
// released), whose last renewal this process saw at lastSeen.
type takeover struct {
	unclean  bool
	lastSeen time.Time
}

func (l *Lock) stamp(ler resourcelock.LeaderElectionRecord) (resourcelock.LeaderElectionRecord, takeover) {
	if ler.HolderIdentity != l.Identity() {
		return ler, takeover{} // a release
	}
	now := metav1.NewTime(l.now())
	l.mu.Lock()
	defer l.mu.Unlock()
	var took takeover
	switch {
	case ler.AcquireTime.Equal(&ler.RenewTime):
		// A new acquisition: client-go sets both to the same instant.
		l.acquiredAsked, l.acquiredAt = ler.AcquireTime, now
		ler.AcquireTime = now
		if h := l.got.holder; h != "" && h != l.Identity() {
			took = takeover{unclean: true, lastSeen: l.got.at}
		}
	case ler.AcquireTime.Equal(&l.acquiredAsked):
		ler.AcquireTime = l.acquiredAt
	}
	ler.RenewTime = now
	return ler, took
}

// wrote tells the health check and the Fence about a write: a record
// naming this replica is a renewal sent at its renew time, any other record
// a release.
func (l *Lock) wrote(ler resourcelock.LeaderElectionRecord, took takeover, err error) {
	if err == nil {
		l.wroteHealth(ler.HolderIdentity)
	}
	if l.fence == nil || err != nil {
		return
	}
	if ler.HolderIdentity != l.Identity() {
		l.fence.stop()
		return
	}
	if took.unclean {
		l.fence.tookOver(l.now(), took.lastSeen)
	}
	l.fence.renew(ler.RenewTime.Time)
}
