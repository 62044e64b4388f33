package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/patch"
)

const (
	// staleRecheck is when a reconcile that found the cache behind our own
	// write looks again, in case the event that brings the newer copy is one
	// the predicates drop.
	staleRecheck = time.Second
	// maxEventNote keeps Event notes within the API's 1 KiB limit.
	maxEventNote = 1000
)

// errCacheBehind marks a read that found the cache still older than our own
// last write. It is retried, never shown to users.
var errCacheBehind = errors.New("cache has not caught up with the attacher's last write yet")

// getFresh reads obj from the cache. fresh is false when the copy is older
// than our own last write to it: the caller then does nothing with it. The
// newer copy is on its way, and its arrival in the cache triggers the next
// reconcile; waiting for it here would only hold a worker.
func (r *VolumeAttachmentReconciler) getFresh(ctx context.Context, key types.NamespacedName, obj client.Object) (fresh bool, err error) {
	return getFresh(ctx, r.Client, r.Freshness, key, obj)
}

func getFresh(ctx context.Context, c client.Reader, t *freshness.Tracker, key types.NamespacedName, obj client.Object) (bool, error) {
	if err := c.Get(ctx, key, obj); err != nil {
		return false, err
	}
	return t == nil || !t.Stale(obj.GetUID(), obj.GetResourceVersion()), nil
}

// sendJSONPatch sends p to obj, refreshes obj from the answer and records
// the written version. An empty patch sends nothing.
func sendJSONPatch(ctx context.Context, c client.Client, t *freshness.Tracker, obj client.Object, p patch.JSON) error {
	if p.Empty() {
		return nil
	}
	raw, err := p.Patch()
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, obj, raw); err != nil {
		return err
	}
	recordWrite(ctx, c, t, obj)
	return nil
}

// event records an Event about obj when a recorder is configured.
func (r *VolumeAttachmentReconciler) event(obj runtime.Object, eventType, reason, action, note string, args ...any) {
	recordEvent(r.Recorder, obj, eventType, reason, action, note, args...)
}

// recordEvent is event for any recorder; rec may be nil.
func recordEvent(rec events.EventRecorder, obj runtime.Object, eventType, reason, action, note string, args ...any) {
	if rec == nil {
		return
	}
	if va, ok := obj.(*storagev1.VolumeAttachment); ok {
		// A reference without resourceVersion: the recorder folds a
		// repeated Event into one Event with a series only when the
		// reference is identical, and every failure changes the VA's
		// version (its status.attachError). With the version in it, a VA
		// failing for hours would create one Event object per retry.
		obj = &corev1.ObjectReference{
			APIVersion: storagev1.SchemeGroupVersion.String(),
			Kind:       "VolumeAttachment",
			Name:       va.Name,
			UID:        va.UID,
		}
	}
	rec.Eventf(obj, nil, eventType, reason, action, note, args...)
}

// eventNote turns an error into an Event note: the gRPC code first when
// there is one, so `kubectl get events` shows it without opening the note,
// and never longer than the API allows.
func eventNote(err error) string {
	note := err.Error()
	if code, ok := csi.Code(err); ok {
		note = fmt.Sprintf("[%s] %s", code, note)
	}
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	return note
}

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
func (r *VolumeAttachmentReconciler) failed(ctx context.Context, va *storagev1.VolumeAttachment, op operation, cause error) error {
	if errors.Is(cause, errCacheBehind) {
		return cause
	}
	base := va.DeepCopy()
	verr := &storagev1.VolumeError{Time: metav1.Now(), Message: cause.Error()}
	if code, ok := csi.Code(cause); ok {
		verr.ErrorCode = ptr.To(int32(code))
	}
	op.setError(&va.Status, verr)
	if err := r.patchStatus(ctx, va, base); err != nil && !apierrors.IsNotFound(err) {
		log.FromContext(ctx).Error(err, "Failed to save the error in the VolumeAttachment status", "operation", op.action)
	}
	r.event(va, corev1.EventTypeWarning, op.failedReason, op.action, "%s", eventNote(cause))
	r.Metrics.OperationFailed(op.metric, cause)
	return cause
}
