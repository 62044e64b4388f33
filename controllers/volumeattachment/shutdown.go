package volumeattachment

// The Manager waits controllers.ShutdownGracePeriod on SIGTERM for the
// reconciles in flight: long enough for one CSI call that has just started
// and the writes after it, because no reconcile starts a new call after
// SIGTERM (callAllowed).

import (
	"context"
	"errors"
)

// errShuttingDown stops a reconcile that would start a CSI call after
// SIGTERM. It is no failure: nothing is written, and the next leader picks
// the object up.
var errShuttingDown = errors.New("the attacher is shutting down; the next leader takes over")

type stopKey struct{}

// withStop detaches ctx from the controller's cancellation, so that a CSI
// call already running and the writes that record its result finish at
// shutdown, and keeps the controller's Done channel for callAllowed.
func withStop(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), stopKey{}, ctx.Done())
}

// callAllowed returns errShuttingDown once the controller is stopping: a
// reconcile that waited for the per-object lock, or was still preparing its
// request, when SIGTERM came must not start a call the graceful shutdown
// would then have to wait for.
func callAllowed(ctx context.Context) error {
	stop, _ := ctx.Value(stopKey{}).(<-chan struct{})
	select {
	case <-stop:
		return errShuttingDown
	default:
		return nil
	}
}
