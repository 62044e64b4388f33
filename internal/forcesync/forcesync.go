package forcesync

import (
	"context"
	"sync"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/csi-attacher/csi-attacher/internal/cache"
)

// buffer lets a pass queue many VolumeAttachments without waiting for the
// controller to drain each one.
const buffer = 128

// Queue carries VolumeAttachments from the drift pass and the driver-back
// hook to the VolumeAttachment controller, and remembers which of them must
// call the driver once even though their state looks settled: the driver
// disagrees with the API.
//
// Marks are keyed by UID, not name: a mark left by a VolumeAttachment
// deleted before its reconcile must never make a later one of the same name
// call the driver. Each mark is used once.
type Queue struct {
	// reader is the cache Mark checks, so a mark for an object already gone
	// is taken back at once: its reconcile finds nothing and would never
	// consume it.
	reader client.Reader
	ch     chan event.GenericEvent

	mu   sync.Mutex
	uids map[types.UID]bool
}

// New returns an empty Queue whose marks are checked against reader, the
// Manager's cache.
func New(reader client.Reader) *Queue {
	return &Queue{reader: reader, ch: make(chan event.GenericEvent, buffer), uids: map[types.UID]bool{}}
}

// Mark flags va for one forced sync.
func (q *Queue) Mark(ctx context.Context, va *storagev1.VolumeAttachment) {
	q.mu.Lock()
	q.uids[va.UID] = true
	q.mu.Unlock()
	if !cache.StillCached(ctx, q.reader, va) {
		q.Consume(va.UID)
	}
}

// Consume reports whether uid was marked, and clears the mark.
func (q *Queue) Consume(uid types.UID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	marked := q.uids[uid]
	delete(q.uids, uid)
	return marked
}

// Forget drops the mark of a deleted object, for cache.OnDelete.
func (q *Queue) Forget(o client.Object) { q.Consume(o.GetUID()) }

// Len is the number of marks not consumed yet.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.uids)
}

// Enqueue hands va to the controller, waiting while the buffer is full,
// until ctx ends.
func (q *Queue) Enqueue(ctx context.Context, va *storagev1.VolumeAttachment) {
	select {
	case q.ch <- event.GenericEvent{Object: va}:
	case <-ctx.Done():
	}
}

// Source is the controller's end of the queue: a raw source the controller
// watches, whatever state the object is in (the For predicates do not apply
// to it, and Reconcile dispatches on the object's state).
func (q *Queue) Source() source.Source {
	return source.Channel[client.Object](q.ch, &handler.EnqueueRequestForObject{})
}
