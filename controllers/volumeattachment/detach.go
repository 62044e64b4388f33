package volumeattachment

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/patch"
	"github.com/csi-attacher/csi-attacher/internal/report"
)

// reconcileDetach detaches a VolumeAttachment that is being deleted. Our
// finalizer, not status.attached, says whether the volume may be published:
// an attach that timed out leaves attached=false but may have published the
// volume, so ControllerUnpublishVolume runs whenever the finalizer is there.
// Order: ControllerUnpublishVolume, then the finalizer, then the status
// (only when the object outlives our finalizer).
func (r *Reconciler) reconcileDetach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if !controllerutil.ContainsFinalizer(va, r.finalizer) {
		return r.forcedDetach(ctx, va)
	}
	if err := r.unpublish(ctx, va, false); err != nil {
		return err
	}
	return r.markDetached(ctx, va)
}

// forcedDetach unpublishes a volume whose VolumeAttachment no longer has
// our finalizer, when the drift pass found it still published
// (another finalizer keeps the object). There is no finalizer to remove;
// a failure keeps the flag so the retry unpublishes again.
func (r *Reconciler) forcedDetach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if !r.Force.Consume(va.UID, forcesync.Unpublish) {
		return nil
	}
	err := r.unpublish(ctx, va, true)
	if err != nil {
		r.Force.Mark(ctx, va, forcesync.Unpublish)
	}
	return err
}

// unpublish calls ControllerUnpublishVolume within the limits of calls in
// flight, logging it first (at V(4), or at V(0) for a volume still
// published after its detach); a failure is reported as a detach error.
func (r *Reconciler) unpublish(ctx context.Context, va *storagev1.VolumeAttachment, afterDetach bool) error {
	// The slot comes first, as for attach: no Secret GET for a call that
	// cannot start.
	slot, err := r.acquireCall(ctx, va, true)
	if err != nil {
		return err
	}
	defer slot.release()
	req, err := r.Resolver.UnpublishRequest(ctx, va)
	if err != nil {
		return r.detachFailed(ctx, va, err)
	}
	if err := callAllowed(ctx); err != nil {
		return err
	}
	if afterDetach {
		log.FromContext(ctx).Info("Unpublishing volume still published after detach", "volumeHandle", req.VolumeID, "nodeID", req.NodeID)
	} else {
		log.FromContext(ctx).V(4).Info("Unpublishing volume", "volumeHandle", req.VolumeID, "nodeID", req.NodeID)
	}
	err = r.Attacher.Unpublish(ctx, req)
	slot.called(err)
	if err != nil {
		return r.detachFailed(ctx, va, err)
	}
	return nil
}

// markDetached removes our finalizer first: once it is gone nothing calls
// ControllerUnpublishVolume again for this object. If that was the last
// finalizer the API server deletes the object and there is no status left to
// write; otherwise the status is cleared so other finalizer holders see the
// volume detached.
//
// When the object is deleted, the cache still holds the copy with our
// finalizer until it sees the deletion, and a reconcile queued meanwhile (by
// a PV or CSINode event) would unpublish again. The API server answers the
// deleting write with the previous resourceVersion, so the write alone does
// not make that copy stale: the tracker marks the object gone until the
// cache sees the deletion (followObjects).
func (r *Reconciler) markDetached(ctx context.Context, va *storagev1.VolumeAttachment) error {
	hadError := va.Status.DetachError != nil
	if err := r.sendPatch(ctx, va, patch.RemoveFinalizer(va.Finalizers, r.finalizer)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return r.detachFailed(ctx, va, fmt.Errorf("could not mark as detached: %w", err))
	}
	log.FromContext(ctx).V(2).Info("Detached volume")
	if va.DeletionTimestamp != nil {
		r.Metrics.ObserveDetach(r.started.since("detach", va.Name, va.UID, *va.DeletionTimestamp, time.Now()))
	}
	if hadError {
		r.event(va, corev1.EventTypeNormal, ReasonDetached, "Detach", "Volume detached from node %s after earlier failures", va.Spec.NodeName)
	}
	if len(va.Finalizers) == 0 {
		r.Freshness.RecordGone(ctx, r.Client, va)
		return nil
	}
	base := va.DeepCopy()
	va.Status.Attached = false
	va.Status.AttachmentMetadata = nil
	va.Status.DetachError = nil
	if err := patchStatus(ctx, r.Client, r.Freshness, va, base); err != nil && !apierrors.IsNotFound(err) {
		err = fmt.Errorf("volume detached, but VolumeAttachment %q could not be marked detached: %w", va.Name, err)
		r.event(va, corev1.EventTypeWarning, ReasonDetachFailed, "Detach", "%s", report.EventNote(err))
		return err
	}
	return nil
}
