package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/patch"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// reconcileAttach attaches a VolumeAttachment that is not being deleted.
// Everything that can fail without side effects (source, capability,
// secrets, node ID) is checked before the first write, so an attachment that
// can never work leaves no finalizer behind. Then, in order: the PV
// finalizer, the VA finalizer with the node-ID annotation in one patch,
// ControllerPublishVolume, and the status.
func (r *VolumeAttachmentReconciler) reconcileAttach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	// An attached volume is published again only when the ListVolumes
	// reconciler found it detached behind our back. The flag is taken even
	// for a VA not attached yet, so it cannot linger and cause a needless
	// publish later.
	forced := r.force.consume(va.UID)
	if va.Status.Attached && !forced {
		return nil
	}
	err := r.attach(ctx, va)
	if err != nil && forced {
		// attached=true still holds, so without the flag the retry would
		// stop at the shortcut above.
		r.forceSync(ctx, va)
	}
	return err
}

// attach runs the attach sequence described at reconcileAttach.
func (r *VolumeAttachmentReconciler) attach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	src, pv, err := r.source(ctx, va)
	if err == nil && pv != nil && !pv.DeletionTimestamp.IsZero() {
		err = fmt.Errorf("PersistentVolume %q is marked for deletion", pv.Name)
	}
	var req csi.PublishRequest
	if err == nil {
		req, err = r.publishRequest(ctx, va, src)
	}
	if err == nil && pv != nil {
		err = r.ensurePVFinalizer(ctx, pv)
	}
	if err == nil {
		err = r.ensureVAFinalizer(ctx, va, req.NodeID)
	}
	if err != nil {
		err = r.attachFailed(ctx, va, err)
		if volume.Invalid(err) {
			// Retrying cannot help, so it is not retried (nor is another
			// Warning Event sent) until the VolumeAttachment or its
			// PersistentVolume changes: those events queue it again.
			return reconcile.TerminalError(err)
		}
		return err
	}

	if err := callAllowed(ctx); err != nil {
		return err
	}
	if !r.nodes.tryAcquire(va.Spec.NodeName) {
		return errNodeBusy
	}
	log.FromContext(ctx).V(4).Info("Publishing volume", "volumeHandle", req.VolumeID, "nodeID", req.NodeID)
	publishContext, err := r.Attacher.Publish(ctx, req)
	r.nodes.release(va.Spec.NodeName)
	if err != nil {
		// The CSI client's error already names the call, volume and node.
		return r.attachFailed(ctx, va, err)
	}
	return r.markAttached(ctx, va, publishContext)
}

// source resolves the CSI source of a VolumeAttachment: its PersistentVolume
// from the cache, or its inline spec. pv is nil for inline volumes.
func (r *VolumeAttachmentReconciler) source(ctx context.Context, va *storagev1.VolumeAttachment) (volume.Source, *corev1.PersistentVolume, error) {
	pvName, err := volume.PVNameOf(va)
	if err != nil {
		return volume.Source{}, nil, err
	}
	if pvName == "" {
		src, err := volume.InlineSource(va, r.DriverName)
		return src, nil, err
	}
	pv := &corev1.PersistentVolume{}
	fresh, err := r.getFresh(ctx, types.NamespacedName{Name: pvName}, pv)
	switch {
	case apierrors.IsNotFound(err):
		return volume.Source{}, nil, fmt.Errorf("PersistentVolume %q not found", pvName)
	case err != nil:
		return volume.Source{}, nil, fmt.Errorf("failed to read PersistentVolume %q: %w", pvName, err)
	case !fresh:
		return volume.Source{}, nil, fmt.Errorf("PersistentVolume %q: %w", pvName, errCacheBehind)
	}
	src, err := volume.PVSource(pv, r.DriverName)
	return src, pv, err
}

// publishRequest builds the ControllerPublishVolume request without writing
// anything.
func (r *VolumeAttachmentReconciler) publishRequest(ctx context.Context, va *storagev1.VolumeAttachment, src volume.Source) (csi.PublishRequest, error) {
	capability, err := volume.Capability(src.Spec, r.DefaultFSType, r.SingleNodeMultiWriter)
	if err != nil {
		return csi.PublishRequest{}, fmt.Errorf("%s: %w", describeSource(src), err)
	}
	secrets, err := r.secrets(ctx, src.CSI().ControllerPublishSecretRef)
	if err != nil {
		return csi.PublishRequest{}, err
	}
	nodeID, err := r.nodeIDFromCSINode(ctx, va.Spec.NodeName)
	if err != nil {
		return csi.PublishRequest{}, err
	}
	return csi.PublishRequest{
		VolumeID:      src.CSI().VolumeHandle,
		NodeID:        nodeID,
		Capability:    capability,
		ReadOnly:      src.CSI().ReadOnly && r.PublishReadonly,
		Secrets:       secrets,
		VolumeContext: src.CSI().VolumeAttributes,
		Migrated:      src.Migrated,
	}, nil
}

func describeSource(src volume.Source) string {
	if src.Inline() {
		return "inline volume spec"
	}
	return fmt.Sprintf("PersistentVolume %q", src.PVName)
}

// secrets reads the controllerPublishSecretRef directly from the API server:
// Secrets are never cached, so the attacher needs only "get" on them and
// holds no copy of every Secret in the cluster.
func (r *VolumeAttachmentReconciler) secrets(ctx context.Context, ref *corev1.SecretReference) (map[string]string, error) {
	if ref == nil {
		return nil, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		return nil, fmt.Errorf("failed to load secret \"%s/%s\": %w", ref.Namespace, ref.Name, err)
	}
	data := make(map[string]string, len(secret.Data)+len(secret.StringData))
	for k, v := range secret.Data {
		data[k] = string(v)
	}
	return data, nil
}

// nodeIDFromCSINode reads the driver's node ID from the node's CSINode.
func (r *VolumeAttachmentReconciler) nodeIDFromCSINode(ctx context.Context, nodeName string) (string, error) {
	if nodeName == "" {
		return "", errors.New("VolumeAttachment has an empty spec.nodeName")
	}
	node := &storagev1.CSINode{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: nodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("CSINode %q not found: driver %s is not registered on node %s yet", nodeName, r.DriverName, nodeName)
		}
		return "", fmt.Errorf("failed to read CSINode %q: %w", nodeName, err)
	}
	return volume.NodeID(node, r.DriverName)
}

// publishedNodeID is the node ID a VolumeAttachment's volume was published
// to: the annotation written with our finalizer before
// ControllerPublishVolume, else (an attachment from before the annotation
// existed) the node's CSINode. The annotation comes first because the
// CSINode can change under the same node name: a node that registers again
// gets a new ID, and the volume is still published to the old one. Detach
// and the ListVolumes pass both use it, so they never disagree on where the
// volume is.
func (r *VolumeAttachmentReconciler) publishedNodeID(ctx context.Context, va *storagev1.VolumeAttachment) (string, error) {
	if id := va.Annotations[volume.NodeIDAnnotation]; id != "" {
		return id, nil
	}
	return r.nodeIDFromCSINode(ctx, va.Spec.NodeName)
}

// ensurePVFinalizer protects the PersistentVolume from removal while a
// VolumeAttachment needs its CSI source for detach.
func (r *VolumeAttachmentReconciler) ensurePVFinalizer(ctx context.Context, pv *corev1.PersistentVolume) error {
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
func (r *VolumeAttachmentReconciler) ensureVAFinalizer(ctx context.Context, va *storagev1.VolumeAttachment, nodeID string) error {
	p := append(patch.AddFinalizer(va.Finalizers, r.finalizer), patch.SetAnnotation(va.Annotations, volume.NodeIDAnnotation, nodeID)...)
	if err := r.sendPatch(ctx, va, p); err != nil {
		return fmt.Errorf("could not save VolumeAttachment %q: %w", va.Name, err)
	}
	return nil
}

// markAttached records the attachment in the status. Only fields that
// change are sent; an unchanged status is not written at all.
func (r *VolumeAttachmentReconciler) markAttached(ctx context.Context, va *storagev1.VolumeAttachment, publishContext map[string]string) error {
	hadError, reattach := va.Status.AttachError != nil, va.Status.Attached
	base := va.DeepCopy()
	va.Status.Attached = true
	va.Status.AttachmentMetadata = nil
	if len(publishContext) > 0 {
		va.Status.AttachmentMetadata = publishContext
	}
	va.Status.AttachError = nil
	if err := r.patchStatus(ctx, va, base); err != nil {
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

// attachFailed saves the error in status.attachError, emits a Warning Event,
// and returns the error so the controller retries.
func (r *VolumeAttachmentReconciler) attachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error) error {
	return r.failed(ctx, va, opAttach, cause)
}

// sendPatch sends a JSON patch and remembers the written version.
func (r *VolumeAttachmentReconciler) sendPatch(ctx context.Context, obj client.Object, p patch.JSON) error {
	return sendJSONPatch(ctx, r.Client, r.Freshness, obj, p)
}

// patchStatus sends a status merge patch computed against base, unless
// nothing changed.
func (r *VolumeAttachmentReconciler) patchStatus(ctx context.Context, va, base *storagev1.VolumeAttachment) error {
	mp := client.MergeFrom(base)
	data, err := mp.Data(va)
	if err != nil {
		return err
	}
	if string(data) == "{}" {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, va, client.RawPatch(mp.Type(), data)); err != nil {
		return err
	}
	recordWrite(ctx, r.Client, r.Freshness, va)
	return nil
}

func hasFinalizer(o client.Object, finalizer string) bool {
	return controllerutil.ContainsFinalizer(o, finalizer)
}
