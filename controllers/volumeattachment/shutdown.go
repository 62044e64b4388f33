package volumeattachment

// The Manager waits controllers.ShutdownGracePeriod on SIGTERM for the
// reconciles in flight: long enough for one CSI call that has just started
// and the writes after it, because no reconcile starts a new call after
// SIGTERM (callAllowed).
//
// The same gate fences an old leader: with leader election, no call starts
// while this replica's Lease renewal is overdue (Fence, internal/leader),
// and after an unclean takeover an attachment the previous leader may
// still have had a call running for waits until that call's bound has
// passed (held).

import (
	"context"
	"errors"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// errShuttingDown stops a reconcile that would start a CSI call after
// SIGTERM. It is no failure: nothing is written, and the next leader picks
// the object up.
var errShuttingDown = errors.New("the attacher is shutting down; the next leader takes over")

// Fence decides whether this replica may start a CSI call; leader.Fence
// implements it from what the Lease lock sees.
type Fence interface {
	// Wait returns nil once a call may start: at once while the Lease is
	// renewed on time, else after the next successful renewal. It returns
	// an error if stop is closed first.
	Wait(ctx context.Context, stop <-chan struct{}) error
	// Hold returns how long an operation first seen at seen (known false:
	// at an unknown moment) must still wait after an unclean takeover.
	Hold(seen time.Time, known bool) time.Duration
}

type stopKey struct{}

// gate is what callAllowed consults: the controller's Done channel and
// the fence, nil without leader election.
type gate struct {
	stop  <-chan struct{}
	fence Fence
}

// withStop detaches ctx from the controller's cancellation, so that a CSI
// call already running and the writes that record its result finish at
// shutdown, and keeps the controller's Done channel and the fence for
// callAllowed.
func withStop(ctx context.Context, fence Fence) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), stopKey{}, gate{stop: ctx.Done(), fence: fence})
}

// callAllowed returns errShuttingDown once the controller is stopping: a
// reconcile that waited for the per-object lock, or was still preparing its
// request, when SIGTERM came must not start a call the graceful shutdown
// would then have to wait for. While the Lease renewal is overdue it waits
// for the next renewal first: a leader that may be about to lose its Lease,
// or that cannot reach the API server to record a result, starts no call.
func callAllowed(ctx context.Context) error {
	g, _ := ctx.Value(stopKey{}).(gate)
	select {
	case <-g.stop:
		return errShuttingDown
	default:
	}
	if g.fence != nil && g.fence.Wait(ctx, g.stop) != nil {
		return errShuttingDown
	}
	return nil
}

// held returns how long the reconcile of va must wait after an unclean
// takeover before it acts: while the previous leader may still have a CSI
// call running for it. Only an operation in progress can have one (an
// attach not recorded yet, or a detach while our finalizer is there), and
// only one this replica already saw before it took over.
func (r *Reconciler) held(va *storagev1.VolumeAttachment) time.Duration {
	if r.Fence == nil {
		return 0
	}
	op := "attach"
	switch {
	case va.DeletionTimestamp.IsZero() && va.Status.Attached:
		return 0
	case !va.DeletionTimestamp.IsZero():
		if !controllerutil.ContainsFinalizer(va, r.finalizer) {
			return 0
		}
		op = "detach"
	}
	seen, known := r.started.seenAt(op, va.Name, va.UID)
	wait := r.Fence.Hold(seen, known)
	if wait > 0 && !known {
		// The hook that notes when an operation first showed up
		// (followObjects) runs on its own informer goroutine, and the
		// event that queued this reconcile may have reached it first: an
		// attachment created just after the takeover was held for the
		// whole hold. Look again shortly; until the hook has seen the
		// operation it still counts as pending before the takeover.
		return min(wait, sightingRecheck)
	}
	return wait
}

// sightingRecheck is how soon held looks again at an operation whose first
// sighting is not noted yet.
const sightingRecheck = 100 * time.Millisecond
