package freshness

import (
	"context"
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/patch"
)

// ErrCacheBehind marks a read that found the cache still older than our own
// last write. It is retried, never shown to users.
var ErrCacheBehind = errors.New("cache has not caught up with the attacher's last write yet")

// Get reads obj from the cache. fresh is false when the copy is older than
// our own last write to it: the caller then does nothing with it. The newer
// copy is on its way, and its arrival in the cache triggers the next
// reconcile; waiting for it here would only hold a worker. t may be nil.
func (t *Tracker) Get(ctx context.Context, c client.Reader, key client.ObjectKey, obj client.Object) (fresh bool, err error) {
	if err := c.Get(ctx, key, obj); err != nil {
		return false, err
	}
	return t == nil || !t.Stale(obj.GetUID(), obj.GetResourceVersion()), nil
}

// Patch sends the JSON patch p to obj, refreshes obj from the answer and
// records the written version. An empty patch sends nothing.
func (t *Tracker) Patch(ctx context.Context, c client.Client, obj client.Object, p patch.JSON) error {
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
	t.RecordWrite(ctx, c, obj)
	return nil
}

// RecordWrite remembers the version our write to obj produced, unless the
// object is already gone from the cache (deleted by this very write, when it
// removed the last finalizer). t may be nil.
func (t *Tracker) RecordWrite(ctx context.Context, c client.Reader, obj client.Object) {
	if t == nil {
		return
	}
	t.Wrote(obj.GetUID(), obj.GetResourceVersion())
	if !cache.StillCached(ctx, c, obj) {
		t.Forget(obj.GetUID())
	}
}

// RecordGone marks obj, which our write has just deleted, as gone: any copy
// the cache still holds is stale. As in RecordWrite, the mark is taken back
// if the cache has already seen the deletion.
func (t *Tracker) RecordGone(ctx context.Context, c client.Reader, obj client.Object) {
	if t == nil {
		return
	}
	t.Gone(obj.GetUID())
	if !cache.StillCached(ctx, c, obj) {
		t.Forget(obj.GetUID())
	}
}

// ForgetObject drops the entry of a deleted object, for cache.OnDelete.
func (t *Tracker) ForgetObject(o client.Object) { t.Forget(o.GetUID()) }
