package volumeattachment

import (
	"context"
	"encoding/json"

	jsonpatch "github.com/evanphx/json-patch/v5"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/patch"
)

// sendPatch sends a JSON patch and remembers the written version.
func (r *Reconciler) sendPatch(ctx context.Context, obj client.Object, p patch.JSON) error {
	return r.Freshness.Patch(ctx, r.Client, obj, p)
}

// patchStatus sends a status merge patch computed against base, unless
// nothing changed, and remembers the written version.
func patchStatus(ctx context.Context, c client.Client, t *freshness.Tracker, va, base *storagev1.VolumeAttachment) error {
	data, err := statusMergePatch(&base.Status, &va.Status)
	if err != nil {
		return err
	}
	if data == nil {
		return nil
	}
	if err := c.Status().Patch(ctx, va, client.RawPatch(types.MergePatchType, data)); err != nil {
		return err
	}
	t.RecordWrite(ctx, c, va)
	return nil
}

// statusMergePatch is the JSON merge patch from base to status, as
// client.MergeFrom computes it for the whole object, but from the statuses
// alone: only the status changes, and marshalling and diffing the whole
// object (metadata, spec) for every status write cost more than the rest
// of the write. nil when nothing changed.
func statusMergePatch(base, status *storagev1.VolumeAttachmentStatus) ([]byte, error) {
	from, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	diff, err := jsonpatch.CreateMergePatch(from, to)
	if err != nil {
		return nil, err
	}
	if string(diff) == "{}" {
		return nil, nil
	}
	return append(append([]byte(`{"status":`), diff...), '}'), nil
}
