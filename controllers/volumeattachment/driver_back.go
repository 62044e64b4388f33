package volumeattachment

import (
	"context"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// RetryFailed queues every VolumeAttachment of the driver whose last
// attempt failed (attachError or detachError set), for the CSI client's
// HealthMonitor.OnRecovered: a call that failed because the driver was
// gone is tried again as soon as the driver is back, instead of at the end
// of its backoff (up to --retry-interval-max). It does not block: the
// objects are queued from a goroutine of their own until ctx ends.
func (r *Reconciler) RetryFailed(ctx context.Context) {
	logger := log.FromContext(ctx).WithName("driver-back")
	var list storagev1.VolumeAttachmentList
	// Read only (the trigger uses names), so no deep copies.
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "Cannot list the VolumeAttachments to retry now that the CSI driver is back")
		return
	}
	var failed []*storagev1.VolumeAttachment
	for i := range list.Items {
		va := &list.Items[i]
		if va.Spec.Attacher == r.DriverName && (va.Status.AttachError != nil || va.Status.DetachError != nil) {
			failed = append(failed, va)
		}
	}
	if len(failed) == 0 {
		return
	}
	logger.Info("The CSI driver is back: retrying the VolumeAttachments whose last attempt failed", "count", len(failed))
	go func() {
		for _, va := range failed {
			r.Force.Enqueue(ctx, va)
			if ctx.Err() != nil {
				return
			}
		}
	}()
}
