package cache

import (
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestStillCached(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cached := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va", UID: "uid-1", Finalizers: []string{"f"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cached.DeepCopy()).Build()
	va := func(name, uid string) *storagev1.VolumeAttachment {
		return &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: name, UID: k8stypes.UID(uid)}}
	}
	for _, tc := range []struct {
		name string
		obj  *storagev1.VolumeAttachment
		want bool
	}{
		{"the same object", va("va", "uid-1"), true},
		{"deleted and created again under the name", va("va", "uid-2"), false},
		{"gone", va("other", "uid-3"), false},
	} {
		before := tc.obj.DeepCopy()
		if got := StillCached(t.Context(), c, tc.obj); got != tc.want {
			t.Errorf("%s: StillCached = %v, want %v", tc.name, got, tc.want)
		}
		// The question leaves the object asked about as it was.
		if tc.obj.UID != before.UID || len(tc.obj.Finalizers) != 0 {
			t.Errorf("%s: StillCached changed its argument to %+v", tc.name, tc.obj.ObjectMeta)
		}
	}
}
