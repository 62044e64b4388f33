package volumeattachment

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// The predicates only decide what is queued; none of them records
// anything (the latency clock follows the informer, see startTimes.handler).

// ofDriver keeps only VolumeAttachments of driver.
func ofDriver(driver string) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		va, ok := o.(*storagev1.VolumeAttachment)
		return ok && va.Spec.Attacher == driver
	})
}

// deleting keeps the objects whose deletion state is want.
func deleting(want bool) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return !o.GetDeletionTimestamp().IsZero() == want
	})
}

// changeMatters drops updates that change nothing a reconcile acts on: the
// attach or detach error, the finalizers and the annotations. Those are our
// own writes (the error, and the finalizer with the node-ID annotation
// before a publish): reacting to an error write would retry at once and
// defeat the backoff, and the reconcile that patched the finalizer goes on
// to publish by itself, so the update it brings back would only queue one
// more reconcile, which finds the cache behind its write and looks again a
// second later. Everything else passes: a deletion, a status written by
// someone else, a resync.
func changeMatters() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldVA, ok1 := e.ObjectOld.(*storagev1.VolumeAttachment)
		newVA, ok2 := e.ObjectNew.(*storagev1.VolumeAttachment)
		if !ok1 || !ok2 || oldVA.ResourceVersion == newVA.ResourceVersion {
			return true
		}
		return !equality.Semantic.DeepEqual(withoutOwnWrites(oldVA), withoutOwnWrites(newVA))
	}}
}

// withoutOwnWrites returns a shallow copy without the fields our writes
// that need no reaction change. Only top-level fields of the copy are
// cleared and DeepEqual only reads, so nothing shared with the cache is
// touched and no deep copy is needed.
func withoutOwnWrites(va *storagev1.VolumeAttachment) *storagev1.VolumeAttachment {
	c := *va
	c.ResourceVersion = ""
	c.ManagedFields = nil
	c.Finalizers = nil
	c.Annotations = nil
	c.Status.AttachError = nil
	c.Status.DetachError = nil
	return &c
}

// workToDo drops the creations and updates of VolumeAttachments that a
// reconcile would leave as they are (idle, queue.IdleAttachment): an
// attached one, or one being deleted without our finalizer. Their reconcile
// only reads the object and returns, so queuing them costs a worker, a
// cache read and a place in the queue for nothing: after a restart in a
// cluster of 100 000 attached volumes that is 100 000 reconciles, which
// held up the first new attachment by seconds; in steady state, every
// status patch that marks an attachment attached came back as one more.
// Deletions queue nothing either: the object is gone, a reconcile would
// only find it so, and the informer hook has already forgotten it in every
// per-object map (followObjects). Generic events pass: the drift pass's
// forced syncs act on idle objects on purpose.
func workToDo(idle func(client.Object) bool) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return !idle(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return !idle(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// specOrDeletionChanged passes creations and the updates that can unblock
// an attachment: a changed spec, a deletion, or for an in-tree
// PersistentVolume a change of the metadata its translation reads. Other
// metadata-only updates, our own finalizer patches among them, are dropped.
//
// The creations of the informer's initial list are dropped too: the
// VolumeAttachments' own initial list queues every attachment with work to
// do, and the controller's workers start only once this informer has synced
// as well, so each attachment's first reconcile already sees the object.
// Mapping them back would cost an index lookup per PersistentVolume and per
// CSINode of the cluster before the first worker starts.
func specOrDeletionChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList },
		UpdateFunc: func(e event.UpdateEvent) bool {
			switch o := e.ObjectNew.(type) {
			case *corev1.PersistentVolume:
				old, ok := e.ObjectOld.(*corev1.PersistentVolume)
				return !ok || !equality.Semantic.DeepEqual(old.Spec, o.Spec) ||
					old.DeletionTimestamp.IsZero() != o.DeletionTimestamp.IsZero() ||
					translationInputChanged(old, o)
			case *storagev1.CSINode:
				old, ok := e.ObjectOld.(*storagev1.CSINode)
				return !ok || !equality.Semantic.DeepEqual(old.Spec, o.Spec)
			default:
				return true
			}
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// translationInputChanged tells whether an in-tree PersistentVolume's
// labels or annotations that csi-translation-lib reads differ between old
// and pv. Such a PV is often fixed there, not in its spec (a GCE PD's zone
// label, the Portworx Secret's annotations): an attachment that failed on
// the old values, with a terminal error or a long backoff, is retried at
// once. A CSI PV is not translated, so its metadata never matters.
func translationInputChanged(old, pv *corev1.PersistentVolume) bool {
	if pv.Spec.CSI != nil {
		return false
	}
	return !sameValues(old.Labels, pv.Labels, volume.TranslationLabels) ||
		!sameValues(old.Annotations, pv.Annotations, volume.TranslationAnnotations)
}

// sameValues tells whether a and b agree on each of keys, presence
// included: translation tells an empty label from a missing one.
func sameValues(a, b map[string]string, keys []string) bool {
	for _, k := range keys {
		va, inA := a[k]
		vb, inB := b[k]
		if inA != inB || va != vb {
			return false
		}
	}
	return true
}

// attachmentsOf maps an object (a PV or a CSINode) to the VolumeAttachments
// of driver that use it, through the field index, so that an attachment
// waiting for that object is retried as soon as it appears or changes. Idle
// ones are left out: nothing about the object changes what their reconcile
// does (see workToDo). The list is only read, so it skips the cache's deep
// copies.
func attachmentsOf(c client.Reader, driver, index string, idle func(client.Object) bool) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &storagev1.VolumeAttachmentList{}
		if err := c.List(ctx, list, client.MatchingFields{index: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "Failed to list VolumeAttachments by index", "index", index)
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Spec.Attacher == driver && !idle(&list.Items[i]) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	}
}
