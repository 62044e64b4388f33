package leader

import (
	"fmt"
	"net/http"
	"time"
)

// DefaultGrace is the time past the lease duration after which a leader
// that has not renewed counts as wedged: the reference's 20 s.
const DefaultGrace = 20 * time.Second

// Health. /healthz/leader-election has the reference attacher's meaning: it
// fails once this replica leads but has not renewed its Lease for longer
// than the lease duration plus a grace period (client-go's
// leaderelection.HealthzAdaptor, which the reference uses with 20 s). A
// leader in that state is wedged: client-go gives up leadership after the
// renew deadline and the process exits, so a leader that neither renews
// nor exits has stopped making progress, and the kubelet's liveness probe
// should restart it.
//
// controller-runtime builds its LeaderElector inside the Manager and does
// not expose it, so the check cannot ask the elector. Instead the Lock,
// which the Manager is given (manager.Options.
// LeaderElectionResourceLockInterface), watches what the elector does with
// it: a successful write of a record naming this replica is a renewal
// (wroteHealth), a record naming another holder (or none, after a release)
// means it does not lead (sawHolder).

// sawHolder records that a read returned a record of holder: one held by
// someone else means this replica does not lead.
func (l *Lock) sawHolder(holder string) {
	if holder == l.Identity() {
		return
	}
	l.mu.Lock()
	l.leading = false
	l.mu.Unlock()
}

// wroteHealth records a successful write: an acquisition or renewal when
// the record names this replica, a release when it names nobody.
func (l *Lock) wroteHealth(holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = holder == l.Identity()
	if l.leading {
		l.renewed = l.now()
	}
}

// Check is the /healthz/leader-election check: an error once this replica
// leads and its last renewal is older than the lease duration
// (Options.LeaseDuration) plus the grace (Options.Grace). A standby is
// always healthy, as in client-go.
func (l *Lock) Check(*http.Request) error {
	grace := l.grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return nil
	}
	if since := l.now().Sub(l.renewed); since > l.leaseDuration+grace {
		return fmt.Errorf("failed to renew leadership on Lease %s: last renewed %s ago, more than the lease duration %s plus %s",
			l.Describe(), since.Round(time.Second), l.leaseDuration, grace)
	}
	return nil
}
