package leader

import (
	"context"
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
// watch to be established. Without the watch a standby falls back to
// client-go's plain polling.
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
	// RetryPeriod is --leader-election-retry-period, which is also how
	// often the leader renews. A standby stops waiting when it has seen no
	// renewal for one and a half of it (see Get).
	RetryPeriod time.Duration
}

// Lock is a resourcelock.Interface for a Lease whose Get, in a standby,
// waits for the Lease to be released (see the package documentation).
type Lock struct {
	resourcelock.Interface

	events   record.EventBroadcaster
	informer cache.Controller

	mu      sync.Mutex
	lease   leaseState
	changed chan struct{} // closed and replaced on every change of lease
	waiting int           // Gets waiting for a release
	// acquired maps the acquire time client-go computed before a Get that
	// waited to the time the Lease was really taken (see Update).
	acquiredAsked, acquiredAt metav1.Time
	// renewGap is how long without a renewal ends a standby's wait.
	renewGap time.Duration

	now func() time.Time
}

// leaseState is what the watch last saw of the Lease.
type leaseState struct {
	known    bool // the watch is synced and the Lease exists
	holder   string
	duration time.Duration
	// seen is when this process saw the Lease change last. As in client-go,
	// a lease is valid for its duration from when its holder was last seen
	// renewing it, on this process's clock.
	seen time.Time
}

// NewLock builds the lock with a unique identity (host name and a UUID, as
// controller-runtime's) and starts watching the Lease until ctx ends. Call
// Shutdown once the elector has stopped, to flush its Events.
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
	l.renewGap = o.RetryPeriod * 3 / 2
	lw := cache.NewFilteredListWatchFromClient(cs.CoordinationV1().RESTClient(), "leases", o.Namespace,
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
	st := leaseState{known: true, seen: l.now()}
	if h := lease.Spec.HolderIdentity; h != nil {
		st.holder = *h
	}
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		st.duration = time.Duration(*d) * time.Second
	}
	l.set(st)
}

// forget drops what the watch saw: the Lease is gone, or the watch stopped.
func (l *Lock) forget() { l.set(leaseState{}) }

func (l *Lock) set(st leaseState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lease = st
	close(l.changed)
	l.changed = make(chan struct{})
}

// Get reads the Lease. While another holder renews it, as far as the watch
// tells, it first waits: for a release, or for a change that makes the Lease
// free. The elector's attempt then finds a Lease it can take. The leader's
// own reads (renew, release) never wait.
//
// A holder that stops renewing (it crashed, or lost the API server) ends the
// wait after one and a half renew periods without a renewal. From there the
// elector works as it always does: client-go counts the lease duration from
// the moment its own read first saw the last renewal, so waiting any longer
// here would only add to the time a crashed leader is replaced in.
func (l *Lock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	l.waitForSync(ctx)
	l.waitWhileHeld(ctx)
	return l.Interface.Get(ctx)
}

func (l *Lock) waitForSync(ctx context.Context) {
	if l.informer == nil || l.informer.HasSynced() {
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
		l.mu.Unlock()
		if !st.known || st.holder == "" || st.holder == l.Identity() {
			return
		}
		gap := l.renewGap
		if gap <= 0 || gap > st.duration {
			gap = st.duration
		}
		left := st.seen.Add(gap).Sub(l.now())
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
// keep that acquire time.
func (l *Lock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.Interface.Update(ctx, l.stamp(ler))
}

// Create is Update for a Lease that does not exist yet.
func (l *Lock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.Interface.Create(ctx, l.stamp(ler))
}

func (l *Lock) stamp(ler resourcelock.LeaderElectionRecord) resourcelock.LeaderElectionRecord {
	if ler.HolderIdentity != l.Identity() {
		return ler // a release
	}
	now := metav1.NewTime(l.now())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case ler.AcquireTime.Equal(&ler.RenewTime):
		// A new acquisition: client-go sets both to the same instant.
		l.acquiredAsked, l.acquiredAt = ler.AcquireTime, now
		ler.AcquireTime = now
	case ler.AcquireTime.Equal(&l.acquiredAsked):
		ler.AcquireTime = l.acquiredAt
	}
	ler.RenewTime = now
	return ler
}
