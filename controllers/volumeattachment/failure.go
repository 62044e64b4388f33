package volumeattachment

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/report"
)

// operation describes attach or detach for error reporting.
type operation struct {
	action       string // Event action
	failedReason string // Warning Event reason
	metric       string // csi_attacher_operation_errors_total label
	setError     func(*storagev1.VolumeAttachmentStatus, *storagev1.VolumeError)
}

var (
	opAttach = operation{action: "Attach", failedReason: ReasonAttachFailed, metric: metrics.OperationAttach,
		setError: func(s *storagev1.VolumeAttachmentStatus, e *storagev1.VolumeError) { s.AttachError = e }}
	opDetach = operation{action: "Detach", failedReason: ReasonDetachFailed, metric: metrics.OperationDetach,
		setError: func(s *storagev1.VolumeAttachmentStatus, e *storagev1.VolumeError) { s.DetachError = e }}
)

// failed makes a failure visible in the three places users look: the
// VolumeAttachment status (with the gRPC code when there is one), a Warning
// Event, and the metrics; controller-runtime logs the returned error.
// Failing to save the status does not hide the original error.
func (r *Reconciler) failed(ctx context.Context, va *storagev1.VolumeAttachment, op operation, cause error) error {
	if cacheBehind(cause) {
		return cause
	}
	base := va.DeepCopy()
	verr := &storagev1.VolumeError{Time: metav1.Now(), Message: report.StatusMessage(cause)}
	if code, ok := csi.Code(cause); ok && !r.OmitErrorCode {
		verr.ErrorCode = ptr.To(int32(code))
	}
	op.setError(&va.Status, verr)
	if err := patchStatus(ctx, r.Client, r.Freshness, va, base); err != nil && !apierrors.IsNotFound(err) {
		log.FromContext(ctx).Error(err, "Failed to save the error in the VolumeAttachment status", "operation", op.action)
	}
	r.event(va, corev1.EventTypeWarning, op.failedReason, op.action, "%s", report.EventNote(cause))
	r.Metrics.OperationFailed(op.metric, cause)
	return cause
}

// attachFailed saves the error in status.attachError, emits a Warning Event,
// and returns the error so the controller retries.
func (r *Reconciler) attachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error) error {
	return r.failed(ctx, va, opAttach, cause)
}

// detachFailed saves the error in status.detachError, emits a Warning Event
// and returns the error so the controller retries.
func (r *Reconciler) detachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error) error {
	return r.failed(ctx, va, opDetach, cause)
}

// event records an Event about obj when a recorder is configured.
func (r *Reconciler) event(obj runtime.Object, eventType, reason, action, note string, args ...any) {
	report.Event(r.Recorder, obj, eventType, reason, action, note, args...)
}
