package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/freshness"
)

// forgetOnDelete calls forget with every object of obj's kind that the
// cache sees deleted. The per-object maps use it to follow the live
// objects: an entry for a deleted object is never read again, so keeping it
// is a leak in a process that runs for months.
//
// The informer removes an object from its store before it tells the
// handlers, so once forget runs no reconcile can read the deleted object
// from the cache any more, and nothing will record it again (see
// stillCached).
func forgetOnDelete(mgr ctrl.Manager, obj client.Object, forget func(client.Object)) error {
	// Before the Manager starts, GetInformer only creates the informer; it
	// must not wait for a sync that cannot happen yet.
	inf, err := mgr.GetCache().GetInformer(context.Background(), obj, crcache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) {
		if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		if deleted, ok := o.(client.Object); ok {
			forget(deleted)
		}
	}})
	return err
}

// stillCached tells whether the cache still holds obj (the same UID). It
// closes the race between recording something about an object and that
// object's deletion: the recorder records first, then asks. If the
// deletion reached the cache before the question, the answer is no and the
// recorder takes its entry back; if after, forgetOnDelete's handler, which
// runs after the store is updated, drops it.
func stillCached(ctx context.Context, c client.Reader, obj client.Object) bool {
	cached, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return true
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cached); err != nil {
		// Only a definite "gone" counts: on any other error keep the entry,
		// which the delete handler still drops.
		return !apierrors.IsNotFound(err)
	}
	return cached.GetUID() == obj.GetUID()
}

// recordWrite remembers the version our write produced, unless the object
// is already gone from the cache (deleted by this very write, when it
// removed the last finalizer).
func recordWrite(ctx context.Context, c client.Reader, t *freshness.Tracker, obj client.Object) {
	if t == nil {
		return
	}
	t.Wrote(obj.GetUID(), obj.GetResourceVersion())
	if !stillCached(ctx, c, obj) {
		t.Forget(obj.GetUID())
	}
}

// recordGone marks obj, which our write has just deleted, as gone in the
// tracker: any copy the cache still holds is stale. As in recordWrite, the
// mark is taken back if the cache has already seen the deletion.
func recordGone(ctx context.Context, c client.Reader, t *freshness.Tracker, obj client.Object) {
	t.Gone(obj.GetUID())
	if !stillCached(ctx, c, obj) {
		t.Forget(obj.GetUID())
	}
}

// forgetFreshness drops the tracker's entry of a deleted object.
func forgetFreshness(t *freshness.Tracker) func(client.Object) {
	return func(o client.Object) { t.Forget(o.GetUID()) }
}
