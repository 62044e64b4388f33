package leaderhealth

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
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

// Wrap returns inner (the Lease lock the elector uses, see internal/leader)
// wrapped so that it records the leader's renewals for Check.
func Wrap(inner resourcelock.Interface, leaseDuration time.Duration) *Lock {
	return &Lock{Interface: inner, LeaseDuration: leaseDuration}
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
