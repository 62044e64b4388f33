package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
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
	if t != nil {
		t.Wrote(obj.GetUID(), obj.GetResourceVersion())
	}
	return nil
}

// event records an Event about obj when a recorder is configured.
func (r *VolumeAttachmentReconciler) event(obj runtime.Object, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(obj, nil, eventType, reason, action, note, args...)
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
