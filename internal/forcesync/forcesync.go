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

// Kind is the sync a mark asks for.
type Kind uint8

const (
	// Publish: the driver no longer has the volume of an attached
	// VolumeAttachment published; publish it again.
	Publish Kind = iota + 1
	// Unpublish: the driver still has the volume of a detached
	// VolumeAttachment published; unpublish it again.
	Unpublish
)

// Queue carries VolumeAttachments from the drift pass (which runs on the
// leader only) to the VolumeAttachment controller, and remembers which of them must
// call the driver once even though their state looks settled: the driver
// disagrees with the API.
//
// Marks are keyed by UID, not name: a mark left by a VolumeAttachment
// deleted before its reconcile must never make a later one of the same name
// call the driver. Each mark is used once, and only by the sync it asks
// for: the drift pass compares a cached VolumeAttachment with a later
// ListVolumes answer, so by the time the mark is read the attachment may
// have moved on (a mark to publish again, made from an attached copy while
// the detach ran, must not make the detach unpublish twice).
type Queue struct {
	// reader is the cache Mark checks, so a mark for an object already gone
	// is taken back at once: its reconcile finds nothing and would never
	// consume it.
	reader client.Reader
	ch     chan event.GenericEvent

	mu   sync.Mutex
	uids map[types.UID]Kind
}

// New returns an empty Queue whose marks are checked against reader, the
// Manager's cache.
func New(reader client.Reader) *Queue {
	return &Queue{reader: reader, ch: make(chan event.GenericEvent, buffer), uids: map[types.UID]Kind{}}
}

// Mark flags va for one forced sync of kind.
func (q *Queue) Mark(ctx context.Context, va *storagev1.VolumeAttachment, kind Kind) {
	q.mu.Lock()
	q.uids[va.UID] = kind
	q.mu.Unlock()
	if !cache.StillCached(ctx, q.reader, va) {
		q.drop(va.UID)
	}
}

// Consume reports whether uid was marked for a sync of kind, and clears
// its mark of any kind: a mark of the other kind was made for a state the
// attachment has left.
func (q *Queue) Consume(uid types.UID, kind Kind) bool {
	return q.drop(uid) == kind
}

// Forget drops the mark of a deleted object, for cache.OnDelete.
func (q *Queue) Forget(o client.Object) { q.drop(o.GetUID()) }

// drop clears the mark of uid and returns its kind, 0 for none.
func (q *Queue) drop(uid types.UID) Kind {
	q.mu.Lock()
	defer q.mu.Unlock()
	kind := q.uids[uid]
	delete(q.uids, uid)
	return kind
}

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
