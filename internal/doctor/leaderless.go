package doctor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// CheckLeaderElectionName is the name of the check that looks, for a
// replica running without --leader-election, for another attacher of the
// same driver that is active.
const CheckLeaderElectionName = "leader-election"

// DefaultLeaderlessInterval is how often LeaderlessMonitor reads the Lease.
// A Lease holder renews every few seconds, so two reads a minute catch one
// that runs for longer than a rolling update.
const DefaultLeaderlessInterval = 30 * time.Second

// defaultLeaseDuration is client-go's and the reference's lease duration,
// for a Lease that does not say its own.
const defaultLeaseDuration = 15 * time.Second

// LeaseRef names the Lease the attachers of one driver elect their leader
// with: external-attacher-leader-<driver>, in the leader-election namespace.
type LeaseRef struct {
	Driver    string
	Namespace string
	Name      string
}

func (l LeaseRef) String() string { return l.Namespace + "/" + l.Name }

// ActiveHolder returns who holds lease and how long ago they renewed it,
// and whether that holder is active: it renewed within the Lease's own
// duration, as a standby of client-go's leader election judges it. A
// released Lease (no holder) or one left to expire has no active holder.
func ActiveHolder(lease *coordinationv1.Lease, now time.Time) (holder string, renewedAgo time.Duration, active bool) {
	if lease == nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return "", 0, false
	}
	holder = *lease.Spec.HolderIdentity
	renewed := lease.Spec.RenewTime
	if renewed == nil {
		renewed = lease.Spec.AcquireTime
	}
	if renewed == nil {
		return holder, 0, false
	}
	duration := defaultLeaseDuration
	if lease.Spec.LeaseDurationSeconds != nil && *lease.Spec.LeaseDurationSeconds > 0 {
		duration = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	}
	renewedAgo = max(now.Sub(renewed.Time), 0)
	return holder, renewedAgo, renewedAgo <= duration
}

// CheckLeaderless is the verdict for a replica that runs without
// --leader-election: FAIL when another attacher of the driver holds the
// driver's Lease and renews it, because both then attach and detach the
// same volumes; OK when nobody does. lease and err are the outcome of
// reading the Lease. Another replica that also runs without leader
// election takes no Lease and cannot be seen this way.
func CheckLeaderless(ref LeaseRef, lease *coordinationv1.Lease, err error, now time.Time) Result {
	r := Result{Check: CheckLeaderElectionName}
	switch {
	case apierrors.IsNotFound(err):
		r.Status = StatusOK
		r.Message = fmt.Sprintf("off; no attacher of %s holds the Lease %s. Run one replica only, or pass --leader-election to every replica",
			ref.Driver, ref)
		return r
	case apierrors.IsForbidden(err):
		r.Status = StatusSkip
		r.Message = fmt.Sprintf("off; cannot tell whether another attacher of %s is active: not allowed to get the Lease %s "+
			"(the Role external-attacher-cfg grants it)", ref.Driver, ref)
		return r
	case err != nil:
		r.Status = StatusWarn
		r.Message = fmt.Sprintf("off; cannot tell whether another attacher of %s is active: cannot get the Lease %s: %s",
			ref.Driver, ref, trim(err.Error()))
		return r
	}
	holder, ago, active := ActiveHolder(lease, now)
	if active {
		r.Status = StatusFail
		r.Message = fmt.Sprintf("another attacher of %s is active: %s holds the Lease %s, renewed %s ago, while this one runs "+
			"without --leader-election, so both attach and detach the same volumes. Pass --leader-election to every replica, "+
			"or run only one", ref.Driver, holder, ref, round(ago))
		r.Details = []string{"doctor takes the attacher's flags: if this attacher runs with --leader-election, pass it to doctor too"}
		return r
	}
	r.Status = StatusOK
	if holder == "" {
		r.Message = fmt.Sprintf("off; nobody holds the Lease %s of %s", ref, ref.Driver)
	} else {
		r.Message = fmt.Sprintf("off; the Lease %s of %s was last renewed by %s %s ago: nobody holds it now", ref, ref.Driver, holder, round(ago))
	}
	return r
}

// LeaderlessMonitor is the attacher's own run of the leader-election check
// when it runs without --leader-election: it reads the driver's Lease
// every Interval and logs, at error level, when another attacher of the
// same driver holds and renews it, again when the holder changes and every
// repeatEvery while it lasts, and at info level when it ends.
type LeaderlessMonitor struct {
	// Lease is the driver's Lease.
	Lease LeaseRef
	// Get reads the Lease from the API server.
	Get func(ctx context.Context) (*coordinationv1.Lease, error)
	// Interval is the pause between reads; DefaultLeaderlessInterval when zero.
	Interval time.Duration
	// Log receives the verdicts.
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu         sync.Mutex
	holder     string    // the active holder last reported, "" for none
	reportedAt time.Time // when it was last logged
	cantTell   bool      // a failed read was logged
}

// repeatEvery is how often a lasting conflict is logged again, so that
// whoever reads the log later still finds it.
const repeatEvery = 10 * time.Minute

// CheckOnce reads the Lease, logs what changed, and returns the verdict.
func (m *LeaderlessMonitor) CheckOnce(ctx context.Context) Result {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	lease, err := m.Get(ctx)
	t := now()
	r := CheckLeaderless(m.Lease, lease, err, t)
	holder, ago, active := ActiveHolder(lease, t)

	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		if !m.cantTell {
			m.cantTell = true
			m.Log.Info("Cannot tell whether another attacher of this driver is active", "reason", r.Message)
		}
	case active:
		m.cantTell = false
		if holder != m.holder || t.Sub(m.reportedAt) >= repeatEvery {
			m.Log.Error(errors.New(r.Message),
				"Another attacher of this driver is active while this replica runs without leader election",
				"driver", m.Lease.Driver, "lease", m.Lease.String(), "holder", holder, "renewedAgo", round(ago))
			m.holder, m.reportedAt = holder, t
		}
	default:
		m.cantTell = false
		if m.holder != "" {
			m.Log.Info("No other attacher of this driver is active any more", "driver", m.Lease.Driver,
				"lease", m.Lease.String(), "lastHolder", m.holder)
			m.holder = ""
		}
	}
	return r
}

// Start checks at once and then every Interval until ctx ends
// (manager.Runnable).
func (m *LeaderlessMonitor) Start(ctx context.Context) error {
	interval := m.Interval
	if interval <= 0 {
		interval = DefaultLeaderlessInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		m.CheckOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// NeedLeaderElection is false: the monitor runs where there is no leader
// election (manager.LeaderElectionRunnable).
func (m *LeaderlessMonitor) NeedLeaderElection() bool { return false }
