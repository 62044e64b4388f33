package doctor

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// CheckLeaderElectionName is the name of the check that looks, for a
// replica running without --leader-election, for another attacher of the
// same driver that is active.
const CheckLeaderElectionName = "leader-election"

// CheckLeaderless is the verdict for a replica that runs without
// --leader-election (leader.CheckOtherLeader, which the attacher's own
// leader.LeaderlessMonitor logs): FAIL when another attacher of the driver
// holds the driver's Lease and renews it, because both then attach and
// detach the same volumes; OK when nobody does; SKIP when the user may not
// read the Lease and WARN when it cannot be read. lease and err are the
// outcome of reading the Lease.
func CheckLeaderless(ref leader.LeaseRef, lease *coordinationv1.Lease, err error, now time.Time) Result {
	v := leader.CheckOtherLeader(ref, lease, err, now)
	r := Result{Check: CheckLeaderElectionName, Status: StatusOK, Message: v.Message}
	switch v.State {
	case leader.OtherLeaderActive:
		r.Status = StatusFail
		r.Details = []string{"doctor takes the attacher's flags: if this attacher runs with --leader-election, pass it to doctor too"}
	case leader.OtherLeaderForbidden:
		r.Status = StatusSkip
	case leader.OtherLeaderUnknown:
		r.Status = StatusWarn
	}
	return r
}
