package volumeattachment

import (
	"context"
	"fmt"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// unpublishPreviousNodeID runs before the node-ID annotation moves: when
// the VolumeAttachment carries our finalizer and an annotation with another
// node ID than the CSINode gives now (req.NodeID), the node registered
// again since an earlier publish. That publish may have reached the driver
// even though nothing recorded it (it timed out, or its status write was
// lost), and once the annotation names the new ID nothing looks at the old
// one again: detach and the ListVolumes pass follow the annotation. So the
// volume is unpublished from the old ID first, and only a success lets the
// annotation move. A failure is returned as the attach's error.
//
// It runs under the call slot attach took for the publish: the two calls
// of one attachment run one after the other, never at once, so one slot
// covers both (taking a second one could wait on itself with
// --max-inflight-per-node=1).
func (r *Reconciler) unpublishPreviousNodeID(ctx context.Context, va *storagev1.VolumeAttachment, req csi.PublishRequest) error {
	previous := va.Annotations[volume.NodeIDAnnotation]
	if previous == "" || previous == req.NodeID || !controllerutil.ContainsFinalizer(va, r.finalizer) {
		return nil
	}
	if err := callAllowed(ctx); err != nil {
		return err
	}
	log.FromContext(ctx).Info("Unpublishing volume from the node's previous ID before publishing to its new one",
		"volumeHandle", req.VolumeID, "nodeID", req.NodeID, "previousNodeID", previous)
	err := r.Attacher.Unpublish(ctx, csi.UnpublishRequest{VolumeID: req.VolumeID, NodeID: previous, Secrets: req.Secrets, Migrated: req.Migrated})
	if err != nil {
		// The CSI client's error names the call, volume and old node ID.
		return fmt.Errorf("node %s registered again with node ID %q; the volume may still be published to its previous ID, which must be unpublished first: %w",
			va.Spec.NodeName, req.NodeID, err)
	}
	return nil
}
