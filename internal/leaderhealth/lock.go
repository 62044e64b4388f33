package leaderhealth

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// DefaultGrace is the time past the lease duration after which a leader
// that has not renewed counts as wedged: the reference's 20 s.
const DefaultGrace = 20 * time.Second

// Lock is a resourcelock.Interface that records the leader's renewals for
// Check. Use it as manager.Options.LeaderElectionResourceLockInterface.
type Lock struct {
	resourcelock.Interface
	// LeaseDuration is --leader-election-lease-duration.
	LeaseDuration time.Duration
	// Grace is the tolerance past LeaseDuration; DefaultGrace when zero.
	Grace time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	leading bool
	renewed time.Time
}

// Options are what NewLock needs to build the Lease lock.
type Options struct {
	Namespace     string
	Name          string
	Labels        map[string]string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
}

// NewLock builds the Lease lock the way controller-runtime's Manager does
// (identity hostname_UUID, a client whose requests time out at half the
// renew deadline so that one hung request does not cost the leadership,
// LeaderElection Events from the identity) and wraps it. The Event
// broadcaster lives as long as the process, as the Manager's does.
func NewLock(cfg *rest.Config, o Options) (*Lock, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("leader election identity: %w", err)
	}
	id := host + "_" + string(uuid.NewUUID())
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	if o.RenewDeadline > 0 {
		cfg.Timeout = max(o.RenewDeadline/2, time.Second)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	inner, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.Namespace, o.Name,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{
			Identity:      id,
			EventRecorder: broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: id}),
		}, o.Labels)
	if err != nil {
		broadcaster.Shutdown()
		return nil, fmt.Errorf("leader election lock: %w", err)
	}
	return &Lock{Interface: inner, LeaseDuration: o.LeaseDuration}, nil
}

// Get implements resourcelock.Interface. A record held by someone else
// means this replica does not lead.
func (l *Lock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil && rec != nil && rec.HolderIdentity != l.Identity() {
		l.mu.Lock()
		l.leading = false
		l.mu.Unlock()
	}
	return rec, raw, err
}

// Create implements resourcelock.Interface.
func (l *Lock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, rec)
	if err == nil {
		l.wrote(rec)
	}
	return err
}

// Update implements resourcelock.Interface.
func (l *Lock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, rec)
	if err == nil {
		l.wrote(rec)
	}
	return err
}

// wrote records a successful write: an acquisition or renewal when the
// record names this replica, a release when it names nobody.
func (l *Lock) wrote(rec resourcelock.LeaderElectionRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = rec.HolderIdentity == l.Identity()
	if l.leading {
		l.renewed = l.now()
	}
}

func (l *Lock) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Check is the /healthz/leader-election check: an error once this replica
// leads and its last renewal is older than LeaseDuration plus Grace. A
// standby is always healthy, as in client-go.
func (l *Lock) Check(*http.Request) error {
	grace := l.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return nil
	}
	if since := l.now().Sub(l.renewed); since > l.LeaseDuration+grace {
		return fmt.Errorf("failed to renew leadership on Lease %s: last renewed %s ago, more than the lease duration %s plus %s",
			l.Describe(), since.Round(time.Second), l.LeaseDuration, grace)
	}
	return nil
}
