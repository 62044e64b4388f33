package controllers

import (
	"context"
	"errors"
	"time"
)

// shutdownMargin is what the graceful shutdown allows beyond one CSI call:
// the API writes that follow the call (status, finalizer, Event) and the
// Manager's own stop sequence.
const shutdownMargin = 15 * time.Second

// ShutdownGracePeriod is how long the Manager waits on SIGTERM for in-flight
// reconciles before it releases the Lease and exits, given --timeout, the
// bound of one CSI call. After SIGTERM no reconcile starts a new call (see
// callAllowed), so the longest wait is one call that has just started plus
// the writes after it. Releasing the Lease any sooner would let a standby
// act on a volume whose ControllerPublish is still running here: it could
// unpublish a volume that is not published yet and drop the finalizer, and
// the publish would then complete with no VolumeAttachment left to undo it.
// The pod's terminationGracePeriodSeconds must be longer still.
func ShutdownGracePeriod(csiTimeout time.Duration) time.Duration {
	return csiTimeout + shutdownMargin
}

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
