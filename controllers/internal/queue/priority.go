package queue

import (
	"context"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Priorities on the queues of the attacher's own objects. The priority
// queue hands out the highest priority first and, within one priority, in
// the order the items were queued: an item queued again keeps its place
// unless its priority rises, and a retry takes a new place at the end when
// its backoff or RequeueAfter is over. A reconcile's requeue keeps the
// priority it was handed out with.
const (
	// PriorityPending is for an object with work to do, whatever brought
	// it: the initial list, a resync or a watch event.
	PriorityPending = 0
	// PriorityIdle is for an object whose reconcile would only confirm
	// what is already done: it is served when no pending work is ready.
	// It is controller-runtime's own low priority.
	PriorityIdle = handler.LowPriority
)

// ByState returns the event handler for the kind a controller reconciles.
// It queues the object of each event, as handler.EnqueueRequestForObject
// does, with a priority that follows the object's state instead of the
// event's origin: PriorityIdle when idle says a reconcile has nothing to do,
// PriorityPending otherwise.
//
// controller-runtime's own handler gives everything from the initial list,
// and every resync, its low priority. A new leader finds the attachments
// its predecessor left pending only in its initial list, so they waited
// behind every event that came later: during a rollout, for as long as new
// work kept arriving faster than the workers freed up. Here they are queued
// at the normal priority, ahead of everything that arrives after the list,
// so the oldest pending object starts within the time the workers take for
// the work queued before it (the backlog), however fast new work arrives.
// Only the idle objects, attached ones that merely need confirming, wait
// until no pending work is ready.
//
// Deletions and generic events (the drift pass's findings) are queued at
// the normal priority: they say nothing about the state.
func ByState(idle func(client.Object) bool) handler.EventHandler {
	return byState{idle: idle}
}

type byState struct {
	idle func(client.Object) bool
}

type requestQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h byState) Create(_ context.Context, e event.CreateEvent, q requestQueue) {
	h.add(q, e.Object, h.priority(e.Object))
}

func (h byState) Update(_ context.Context, e event.UpdateEvent, q requestQueue) {
	obj := e.ObjectNew
	if obj == nil {
		obj = e.ObjectOld
	}
	h.add(q, obj, h.priority(obj))
}

func (h byState) Delete(_ context.Context, e event.DeleteEvent, q requestQueue) {
	h.add(q, e.Object, PriorityPending)
}

func (h byState) Generic(_ context.Context, e event.GenericEvent, q requestQueue) {
	h.add(q, e.Object, PriorityPending)
}

func (h byState) priority(o client.Object) int {
	if o != nil && h.idle(o) {
		return PriorityIdle
	}
	return PriorityPending
}

// add queues o's request at priority, or plainly on a queue without
// priorities.
func (h byState) add(q requestQueue, o client.Object, priority int) {
	if o == nil {
		return
	}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)}
	pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request])
	if !ok {
		q.Add(req)
		return
	}
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, req)
}

// IdleAttachment tells which VolumeAttachments a reconcile would leave as
// they are (see volumeattachment.Reconciler.Reconcile): an attached one that
// is not being deleted, and one being deleted that no longer carries our
// finalizer. A forced sync from the drift pass, the one exception, comes
// as a generic event and is queued as pending anyway. Everything else,
// not attached yet or still to be detached, is pending.
func IdleAttachment(finalizer string) func(client.Object) bool {
	return func(o client.Object) bool {
		va, ok := o.(*storagev1.VolumeAttachment)
		if !ok {
			return false
		}
		if va.DeletionTimestamp.IsZero() {
			return va.Status.Attached
		}
		return !controllerutil.ContainsFinalizer(va, finalizer)
	}
}
