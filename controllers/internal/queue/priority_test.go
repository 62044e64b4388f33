package queue

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

const testFinalizer = "external-attacher/test-csi"

func attachment(name string, attached bool) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Status:     storagev1.VolumeAttachmentStatus{Attached: attached},
	}
}

func newTestQueue(t *testing.T) priorityqueue.PriorityQueue[reconcile.Request] {
	q := priorityqueue.New[reconcile.Request]("test")
	t.Cleanup(q.ShutDown)
	return q
}

// drain takes every item the queue holds, in the order a worker would get
// them.
func drain(q priorityqueue.PriorityQueue[reconcile.Request]) []string {
	var names []string
	// Len takes in what was added before it counts.
	for q.Len() > 0 {
		req, _, _ := q.GetWithPriority()
		q.Done(req)
		names = append(names, req.Name)
	}
	return names
}

// A new leader finds the attachments left pending by the old one only in
// its initial list. They must not wait behind every attachment created
// after the takeover: pending ones are served first, in the order they
// were queued, and only the attached ones (nothing to do but confirm) come
// after new work.
func TestByStateServesTheBacklogBeforeNewWork(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	q := newTestQueue(t)
	h := ByState(IdleAttachment(testFinalizer))

	var want []string
	for i := range 50 {
		// The initial list: pending and attached ones mixed.
		pending := attachment(fmt.Sprintf("backlog-%02d", i), false)
		h.Create(ctx, event.CreateEvent{Object: pending, IsInInitialList: true}, q)
		want = append(want, pending.Name)
		h.Create(ctx, event.CreateEvent{Object: attachment(fmt.Sprintf("idle-%02d", i), true), IsInInitialList: true}, q)
	}
	for i := range 50 {
		arrival := attachment(fmt.Sprintf("new-%02d", i), false)
		h.Create(ctx, event.CreateEvent{Object: arrival}, q)
		want = append(want, arrival.Name)
		// A change to an attachment of the backlog that is still queued
		// keeps its place.
		changed := attachment(fmt.Sprintf("backlog-%02d", i), false)
		changed.ResourceVersion = "2"
		h.Update(ctx, event.UpdateEvent{ObjectOld: attachment(changed.Name, false), ObjectNew: changed}, q)
	}
	for i := range 50 {
		want = append(want, fmt.Sprintf("idle-%02d", i))
	}

	g.Expect(drain(q)).To(Equal(want))
}

// The periodic resync (an update with an unchanged resourceVersion) follows
// the same rule: pending work at the normal priority, attached ones last.
func TestByStateResync(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	q := newTestQueue(t)
	h := ByState(IdleAttachment(testFinalizer))

	idle, pending := attachment("idle", true), attachment("pending", false)
	h.Update(ctx, event.UpdateEvent{ObjectOld: idle, ObjectNew: idle}, q)
	h.Update(ctx, event.UpdateEvent{ObjectOld: pending, ObjectNew: pending}, q)
	h.Create(ctx, event.CreateEvent{Object: attachment("new", false)}, q)

	g.Expect(drain(q)).To(Equal([]string{"pending", "new", "idle"}))
}

// Events that are not about the object's state (a deletion, a generic
// event such as the drift pass's) are queued at the normal priority.
func TestByStateDeleteAndGeneric(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	q := newTestQueue(t)
	h := ByState(IdleAttachment(testFinalizer))

	h.Create(ctx, event.CreateEvent{Object: attachment("idle", true), IsInInitialList: true}, q)
	h.Delete(ctx, event.DeleteEvent{Object: attachment("deleted", true)}, q)
	h.Generic(ctx, event.GenericEvent{Object: attachment("forced", true)}, q)

	g.Expect(drain(q)).To(Equal([]string{"deleted", "forced", "idle"}))
}

// Without a priority queue every event is a plain Add.
func TestByStatePlainQueue(t *testing.T) {
	g := NewWithT(t)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	ByState(IdleAttachment(testFinalizer)).Create(context.Background(), event.CreateEvent{Object: attachment("a", true), IsInInitialList: true}, q)
	g.Expect(q.Len()).To(Equal(1))
	req, _ := q.Get()
	g.Expect(req).To(Equal(reconcile.Request{NamespacedName: client.ObjectKey{Name: "a"}}))
}

func TestIdleAttachment(t *testing.T) {
	now := metav1.Now()
	deleting := func(finalizers ...string) *storagev1.VolumeAttachment {
		va := attachment("va", true)
		va.DeletionTimestamp = &now
		va.Finalizers = finalizers
		return va
	}
	tests := []struct {
		name string
		obj  client.Object
		want bool
	}{
		{name: "not attached yet", obj: attachment("va", false), want: false},
		{name: "attached", obj: attachment("va", true), want: true},
		{name: "being deleted with our finalizer", obj: deleting(testFinalizer), want: false},
		{name: "being deleted, our finalizer gone", obj: deleting("other/finalizer"), want: true},
		{name: "not a VolumeAttachment", obj: &storagev1.CSINode{}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(IdleAttachment(testFinalizer)(tc.obj)).To(Equal(tc.want))
		})
	}
}
