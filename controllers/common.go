package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

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
	// maxErrorMessage is the API server's limit, in bytes, on
	// status.attachError.message and detachError.message: a longer message
	// makes the whole status patch fail, and the error would not show.
	maxErrorMessage = 1024
	// truncatedMark ends a message that was cut; it gives the full length,
	// and the full message is in the log.
	truncatedMark = " ... [truncated, %d bytes in all]"
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
	return truncateLen(note, maxEventNote, len(err.Error()))
}

// statusMessage is the error as saved in status.attachError or
// detachError: the error itself when it fits the API server's limit.
// Otherwise its start, and the gRPC code in front when the cut would drop
// the "code = ..." part (a very long volume ID), so the message still says
// what kind of failure it was.
func statusMessage(err error) string {
	msg := err.Error()
	if len(msg) <= maxErrorMessage {
		return msg
	}
	if code, ok := csi.Code(err); ok {
		if cut := truncate(msg, maxErrorMessage); !strings.Contains(cut, "code = "+code.String()) {
			msg = fmt.Sprintf("[%s] %s", code, msg)
			return truncateLen(msg, maxErrorMessage, len(err.Error()))
		}
	}
	return truncate(msg, maxErrorMessage)
}

// truncate cuts s to at most limit bytes, keeping its start and marking the
// cut; s itself when it fits.
func truncate(s string, limit int) string {
	return truncateLen(s, limit, len(s))
}

// truncateLen is truncate with the length the mark reports: that of the
// error, when s is the error's message with the gRPC code put in front. The
// cut never splits a UTF-8 sequence: a broken one would be replaced by three
// bytes in the JSON and could push the message over the limit again.
func truncateLen(s string, limit, total int) string {
	if len(s) <= limit {
		return s
	}
	mark := fmt.Sprintf(truncatedMark, total)
	keep := max(limit-len(mark), 0)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + mark
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
	verr := &storagev1.VolumeError{Time: metav1.Now(), Message: statusMessage(cause)}
	if code, ok := csi.Code(cause); ok && !r.OmitErrorCode {
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
