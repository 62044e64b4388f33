package volumeattachment

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/patch"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// reconcileAttach attaches a VolumeAttachment that is not being deleted.
// Everything that can fail without side effects (source, capability,
// secrets, node ID) is checked before the first write, so an attachment that
// can never work leaves no finalizer behind. Then, in order: the PV
// finalizer, ControllerUnpublishVolume from the node's previous ID when it
// registered again since an earlier attempt (unpublishPreviousNodeID), the
// VA finalizer with the node-ID annotation in one patch,
// ControllerPublishVolume, and the status.
func (r *Reconciler) reconcileAttach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	// An attached volume is published again only when the ListVolumes
	// reconciler found it detached behind our back. The flag is taken even
	// for a VA not attached yet, so it cannot linger and cause a needless
	// publish later.
	forced := r.Force.Consume(va.UID, forcesync.Publish)
	if va.Status.Attached && !forced {
		return nil
	}
	err := r.attach(ctx, va)
	if err != nil && forced {
		// attached=true still holds, so without the flag the retry would
		// stop at the shortcut above.
		r.Force.Mark(ctx, va, forcesync.Publish)
	}
	return err
}

// attach runs the attach sequence described at reconcileAttach, holding
// the call slot from the start (acquireCall).
func (r *Reconciler) attach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	slot, err := r.acquireCall(ctx, va, false)
	if err != nil {
		return err
	}
	defer slot.release()
	src, pv, err := r.Resolver.Source(ctx, va)
	if err == nil && pv != nil && !pv.DeletionTimestamp.IsZero() {
		err = fmt.Errorf("PersistentVolume %q is marked for deletion", pv.Name)
	}
	var req csi.PublishRequest
	if err == nil {
		req, err = r.Resolver.PublishRequest(ctx, va, src)
	}
	if err == nil && pv != nil {
		err = r.ensurePVFinalizer(ctx, pv)
	}
	if err == nil {
		err = r.unpublishPreviousNodeID(ctx, va, req)
	}
	if err == nil {
		err = r.ensureVAFinalizer(ctx, va, req.NodeID)
	}
	if callNotStarted(err) {
		return err
	}
	if err != nil {
		return terminal(r.attachFailed(ctx, va, err))
	}

	if err := callAllowed(ctx); err != nil {
		return err
	}
	log.FromContext(ctx).V(4).Info("Publishing volume", "volumeHandle", req.VolumeID, "nodeID", req.NodeID)
	publishContext, err := r.Attacher.Publish(ctx, req)
	slot.called(err)
	if err != nil {
		// The CSI client's error already names the call, volume and node.
		return r.attachFailed(ctx, va, err)
	}
	return r.markAttached(ctx, va, publishContext)
}

// ensurePVFinalizer protects the PersistentVolume from removal while a
// VolumeAttachment needs its CSI source for detach.
func (r *Reconciler) ensurePVFinalizer(ctx context.Context, pv *corev1.PersistentVolume) error {
	p := patch.AddFinalizer(pv.Finalizers, r.finalizer)
	if p.Empty() {
		return nil
	}
	if err := r.sendPatch(ctx, pv, p); err != nil {
		return fmt.Errorf("could not add finalizer to PersistentVolume %q: %w", pv.Name, err)
	}
	log.FromContext(ctx).V(4).Info("Added finalizer", "PersistentVolume", pv.Name)
	return nil
}

// ensureVAFinalizer adds our finalizer and the node-ID annotation in one
// patch: from this point on detach knows where the volume may be published,
// even if the CSINode disappears.
func (r *Reconciler) ensureVAFinalizer(ctx context.Context, va *storagev1.VolumeAttachment, nodeID string) error {
	p := append(patch.AddFinalizer(va.Finalizers, r.finalizer), patch.SetAnnotation(va.Annotations, volume.NodeIDAnnotation, nodeID)...)
	if err := r.sendPatch(ctx, va, p); err != nil {
		return fmt.Errorf("could not save VolumeAttachment %q: %w", va.Name, err)
	}
	return nil
}

// markAttached records the attachment in the status. Only fields that
// change are sent; an unchanged status is not written at all.
func (r *Reconciler) markAttached(ctx context.Context, va *storagev1.VolumeAttachment, publishContext map[string]string) error {
	hadError, reattach := va.Status.AttachError != nil, va.Status.Attached
	base := va.DeepCopy()
	va.Status.Attached = true
	va.Status.AttachmentMetadata = nil
	if len(publishContext) > 0 {
		va.Status.AttachmentMetadata = publishContext
	}
	va.Status.AttachError = nil
	if err := patchStatus(ctx, r.Client, r.Freshness, va, base); err != nil {
		err = fmt.Errorf("volume published, but VolumeAttachment %q could not be marked attached: %w", va.Name, err)
		// The refused write may have been refused for what it carried (an
		// oversized publish context fails validation): the error alone
		// usually still fits, so save it from the unchanged status.
		*va = *base
		return r.attachFailed(ctx, va, err)
	}
	log.FromContext(ctx).V(2).Info("Attached volume", "republished", reattach)
	if reattach {
		// A forced re-publish is no new attachment: keep it out of the
		// attach latency.
		return nil
	}
	r.Metrics.ObserveAttach(r.started.since("attach", va.Name, va.UID, va.CreationTimestamp, time.Now()))
	if hadError {
		r.event(va, corev1.EventTypeNormal, ReasonAttached, "Attach", "Volume attached to node %s after earlier failures", va.Spec.NodeName)
	}
	return nil
}
