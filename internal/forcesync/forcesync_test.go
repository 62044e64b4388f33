package forcesync

import (
	"context"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func va(name, uid string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}
}

func TestQueueMarks(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	a, b := va("va-a", "uid-a"), va("va-b", "uid-b")
	q := New(fake.NewClientBuilder().WithScheme(scheme).WithObjects(a.DeepCopy(), b.DeepCopy()).Build())
	ctx := context.Background()
	if q.Consume("uid-a", Publish) {
		t.Fatal("consume of an unmarked object reported true")
	}
	q.Mark(ctx, a, Publish)
	q.Mark(ctx, a, Publish)
	q.Mark(ctx, b, Publish)
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	if !q.Consume("uid-a", Publish) {
		t.Fatal("consume of a marked object reported false")
	}
	if q.Consume("uid-a", Publish) {
		t.Fatal("a mark must be used once, however often it was set")
	}
	if !q.Consume("uid-b", Publish) {
		t.Fatal("marks of different objects are independent")
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after every mark was used, want 0", q.Len())
	}
	// An object the cache no longer holds (or a newer one of the same name)
	// keeps no mark: its reconcile would never consume it.
	q.Mark(ctx, va("va-gone", "uid-gone"), Publish)
	q.Mark(ctx, va("va-a", "uid-old"), Publish)
	if q.Len() != 0 {
		t.Fatalf("Len = %d after marking objects gone from the cache, want 0", q.Len())
	}
}

// TestQueueMarkKinds: a mark is used only by the sync it was made for. A
// drift pass that saw an attachment attached, while its detach ran, marks
// it for a new publish; the detach that follows must not take that mark as
// an order to unpublish again.
func TestQueueMarkKinds(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	a := va("va-a", "uid-a")
	q := New(fake.NewClientBuilder().WithScheme(scheme).WithObjects(a.DeepCopy()).Build())
	ctx := context.Background()

	q.Mark(ctx, a, Publish)
	if q.Consume(a.UID, Unpublish) {
		t.Fatal("a mark for a new publish was taken as one for an unpublish")
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d: a mark of the other kind must be dropped when seen, or it lingers", q.Len())
	}
	q.Mark(ctx, a, Unpublish)
	if q.Consume(a.UID, Publish) {
		t.Fatal("a mark for an unpublish was taken as one for a new publish")
	}
	q.Mark(ctx, a, Unpublish)
	if !q.Consume(a.UID, Unpublish) {
		t.Fatal("a mark for an unpublish was not used by the unpublish")
	}
}
