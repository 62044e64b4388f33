package leader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

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

// OtherState is what a replica without --leader-election finds in its
// driver's Lease.
type OtherState int

const (
	// NoOtherLeader: nobody holds and renews the Lease, or there is none.
	NoOtherLeader OtherState = iota
	// OtherLeaderActive: another attacher of the driver holds the Lease and
	// renews it, so both attach and detach the same volumes.
	OtherLeaderActive
	// OtherLeaderForbidden: this user may not get the Lease.
	OtherLeaderForbidden
	// OtherLeaderUnknown: the Lease could not be read.
	OtherLeaderUnknown
)

// OtherLeader is the verdict on the driver's Lease for a replica that runs
// without --leader-election, in the words the attacher's log and the
// doctor share.
type OtherLeader struct {
	State   OtherState
	Message string
	// Holder and RenewedAgo are the Lease's holder, if any, and how long
	// ago they renewed it.
	Holder     string
	RenewedAgo time.Duration
}

// maxErrorLength is the most characters of an error message quoted.
const maxErrorLength = 200

// CheckOtherLeader reads the outcome of getting the driver's Lease (lease
// and err) for a replica that runs without --leader-election. Another
// replica that also runs without leader election takes no Lease and
// cannot be seen this way.
func CheckOtherLeader(ref LeaseRef, lease *coordinationv1.Lease, err error, now time.Time) OtherLeader {
	switch {
	case apierrors.IsNotFound(err):
		return OtherLeader{State: NoOtherLeader, Message: fmt.Sprintf("off; no attacher of %s holds the Lease %s. "+
			"Run one replica only, or pass --leader-election to every replica", ref.Driver, ref)}
	case apierrors.IsForbidden(err):
		return OtherLeader{State: OtherLeaderForbidden, Message: fmt.Sprintf("off; cannot tell whether another attacher of %s "+
			"is active: not allowed to get the Lease %s (the Role external-attacher-cfg grants it)", ref.Driver, ref)}
	case err != nil:
		return OtherLeader{State: OtherLeaderUnknown, Message: fmt.Sprintf("off; cannot tell whether another attacher of %s "+
			"is active: cannot get the Lease %s: %s", ref.Driver, ref, oneLine(err.Error()))}
	}
	holder, ago, active := ActiveHolder(lease, now)
	v := OtherLeader{Holder: holder, RenewedAgo: ago}
	switch {
	case active:
		v.State = OtherLeaderActive
		v.Message = fmt.Sprintf("another attacher of %s is active: %s holds the Lease %s, renewed %s ago, while this one runs "+
			"without --leader-election, so both attach and detach the same volumes. Pass --leader-election to every replica, "+
			"or run only one", ref.Driver, holder, ref, seconds(ago))
	case holder == "":
		v.Message = fmt.Sprintf("off; nobody holds the Lease %s of %s", ref, ref.Driver)
	default:
		v.Message = fmt.Sprintf("off; the Lease %s of %s was last renewed by %s %s ago: nobody holds it now", ref, ref.Driver, holder, seconds(ago))
	}
	return v
}

// oneLine puts an error message on one line of at most maxErrorLength
// characters.
func oneLine(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if utf8.RuneCountInString(msg) <= maxErrorLength {
		return msg
	}
	return string([]rune(msg)[:maxErrorLength]) + "..."
}

// seconds prints a duration to the second.
func seconds(d time.Duration) string {
	return d.Round(time.Second).String()
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
func (m *LeaderlessMonitor) CheckOnce(ctx context.Context) OtherLeader {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	lease, err := m.Get(ctx)
	t := now()
	r := CheckOtherLeader(m.Lease, lease, err, t)

	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.State {
	case OtherLeaderForbidden, OtherLeaderUnknown:
		if !m.cantTell {
			m.cantTell = true
			m.Log.Info("Cannot tell whether another attacher of this driver is active", "reason", r.Message)
		}
	case OtherLeaderActive:
		m.cantTell = false
		if r.Holder != m.holder || t.Sub(m.reportedAt) >= repeatEvery {
			m.Log.Error(errors.New(r.Message),
				"Another attacher of this driver is active while this replica runs without leader election",
				"driver", m.Lease.Driver, "lease", m.Lease.String(), "holder", r.Holder, "renewedAgo", seconds(r.RenewedAgo))
			m.holder, m.reportedAt = r.Holder, t
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
