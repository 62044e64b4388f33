package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/patch"
)

const (
	// cacheWait bounds how long a reconcile waits for the cache to catch up
	// with our own last write; normally that takes milliseconds.
	cacheWait = 2 * time.Second
	// staleRecheck is when a reconcile that gave up waiting looks again.
	staleRecheck = time.Second
	// maxEventNote keeps Event notes within the API's 1 KiB limit.
	maxEventNote = 1000
)

// errCacheBehind marks a read that found the cache still older than our own
// last write. It is retried, never shown to users.
var errCacheBehind = errors.New("cache has not caught up with the attacher's last write yet")

// getFresh reads obj from the cache and, if the copy is older than our last
// write to it, waits briefly for the newer copy. fresh is false when the
// cache did not catch up in time; the caller then retries later instead of
// acting on old data.
func (r *VolumeAttachmentReconciler) getFresh(ctx context.Context, key types.NamespacedName, obj client.Object) (fresh bool, err error) {
	return getFresh(ctx, r.Client, r.Freshness, key, obj)
}

func getFresh(ctx context.Context, c client.Reader, t *freshness.Tracker, key types.NamespacedName, obj client.Object) (bool, error) {
	if err := c.Get(ctx, key, obj); err != nil {
		return false, err
	}
	if t == nil || !t.Stale(obj.GetUID(), obj.GetResourceVersion()) {
		return true, nil
	}
	var getErr error
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, cacheWait, false, func(ctx context.Context) (bool, error) {
		if getErr = c.Get(ctx, key, obj); getErr != nil {
			return false, getErr
		}
		return !t.Stale(obj.GetUID(), obj.GetResourceVersion()), nil
	})
	switch {
	case getErr != nil:
		return false, getErr
	case err != nil:
		return false, nil
	}
	return true, nil
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
