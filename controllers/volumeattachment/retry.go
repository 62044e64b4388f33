package volumeattachment

import (
	"context"
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// retryPolicy decides when a failed reconcile runs again. An error that may
// still be in progress on the backend (timeouts, Unavailable, Aborted,
// ResourceExhausted, Canceled), and any error of ours such as a missing
// object, is returned for the exponential backoff from
// --retry-interval-start. A final gRPC error (InvalidArgument, NotFound,
// FailedPrecondition, ...) will not fix itself soon: it is retried at
// --retry-interval-max, and at once when the VolumeAttachment, its PV or its
// CSINode changes. A terminal error (an attachment that can never work as
// its objects are, see terminal) is not retried at all until one of
// them changes. A call refused for a busy node is no failure (nothing is
// written) but keeps the object's backoff: it is requeued rate-limited, and
// at once when the node's call ends (nodeLimiter); so a refusal never
// resets the backoff of an attachment that keeps failing. A PersistentVolume
// the cache holds in a copy older than our own last write is no failure
// either: it is looked at again shortly (recheckStale), as a stale
// VolumeAttachment is.
func (r *Reconciler) retryPolicy(ctx context.Context, err error) (ctrl.Result, error) {
	switch {
	case err == nil:
		return ctrl.Result{}, nil
	case errors.Is(err, errNodeBusy):
		log.FromContext(ctx).V(4).Info("Waiting for a CSI call of the node to end", "maxInflightPerNode", r.MaxInflightPerNode)
		// Requeue, unlike RequeueAfter (which makes the queue Forget the
		// backoff) or an error (logged as a failure), requeues with the
		// object's backoff and leaves it in place.
		//lint:ignore SA1019 the only result that requeues rate-limited without an error
		return ctrl.Result{Requeue: true}, nil
	case errors.Is(err, errShuttingDown):
		log.FromContext(ctx).V(4).Info("Not starting a CSI call: shutting down")
		return ctrl.Result{}, nil
	case cacheBehind(err):
		return recheckStale(), nil
	}
	if code, ok := csi.Code(err); ok && csi.IsFinalError(err) {
		// Not returned, so controller-runtime does not log it: log it here.
		log.FromContext(ctx).Info("Operation failed with a final error; retrying at the longest interval",
			"grpcCode", code.String(), "retryAfter", r.RetryIntervalMax.String(), "error", err.Error())
		return ctrl.Result{RequeueAfter: r.RetryIntervalMax}, nil
	}
	return ctrl.Result{}, err
}

// recheckStale is the result of a reconcile that found the cache older
// than our own last write, to the VolumeAttachment (Reconcile) or to its
// PersistentVolume (cacheBehind): nothing was done with the old copy, and
// nothing is reported, as nothing failed. The newer copy is on its way and
// its arrival usually queues the object again; the recheck covers an
// arrival the predicates drop (a PersistentVolume's finalizer patch
// changes no spec). RequeueAfter rather than an error: no "Reconciler
// error" log, no backoff.
func recheckStale() ctrl.Result {
	return ctrl.Result{RequeueAfter: queue.StaleRecheck}
}

// cacheBehind tells an error that only says the cache has not caught up
// with our own last write (freshness.ErrCacheBehind, from the Resolver's
// read of the PersistentVolume): it is not shown to users (failed) and is
// retried by recheckStale.
func cacheBehind(err error) bool {
	return errors.Is(err, freshness.ErrCacheBehind)
}

// terminal marks an attach failure that retrying cannot help, an
// attachment that can never work as its objects are (volume.Invalid), as
// terminal: it is not retried, nor is another Warning Event sent, until
// the VolumeAttachment or its PersistentVolume changes; those events queue
// it again. Any other error is returned as it is.
func terminal(err error) error {
	if volume.Invalid(err) {
		return reconcile.TerminalError(err)
	}
	return err
}

// callNotStarted tells a CSI call that was not started (no slot free, or
// shutting down) from a failure: it is retried without being reported.
func callNotStarted(err error) bool {
	return errors.Is(err, errNodeBusy) || errors.Is(err, errShuttingDown)
}
