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
	if q.Consume("uid-a") {
		t.Fatal("consume of an unmarked object reported true")
	}
	q.Mark(ctx, a)
	q.Mark(ctx, a)
	q.Mark(ctx, b)
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	if !q.Consume("uid-a") {
		t.Fatal("consume of a marked object reported false")
	}
	if q.Consume("uid-a") {
		t.Fatal("a mark must be used once, however often it was set")
	}
	if !q.Consume("uid-b") {
		t.Fatal("marks of different objects are independent")
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after every mark was used, want 0", q.Len())
	}
	// An object the cache no longer holds (or a newer one of the same name)
	// keeps no mark: its reconcile would never consume it.
	q.Mark(ctx, va("va-gone", "uid-gone"))
	q.Mark(ctx, va("va-a", "uid-old"))
	if q.Len() != 0 {
		t.Fatalf("Len = %d after marking objects gone from the cache, want 0", q.Len())
	}
}
