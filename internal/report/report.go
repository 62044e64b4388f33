package report

import (
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/csi-attacher/csi-attacher/internal/csi"
)

const (
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

// Event records an Event about obj; rec may be nil (no Events).
func Event(rec events.EventRecorder, obj runtime.Object, eventType, reason, action, note string, args ...any) {
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

// EventNote turns an error into an Event note: the gRPC code first when
// there is one, so `kubectl get events` shows it without opening the note,
// and never longer than the API allows.
func EventNote(err error) string {
	note := err.Error()
	if code, ok := csi.Code(err); ok {
		note = fmt.Sprintf("[%s] %s", code, note)
	}
	return truncateLen(note, maxEventNote, len(err.Error()))
}

// StatusMessage is the error as saved in status.attachError or
// detachError: the error itself when it fits the API server's limit.
// Otherwise its start, and the gRPC code in front when the cut would drop
// the "code = ..." part (a very long volume ID), so the message still says
// what kind of failure it was.
func StatusMessage(err error) string {
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
