package persistentvolume

import (
	"context"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// TestReleasedBy checks that a VolumeAttachment going away queues its
// PersistentVolume only when that PV waits to be released (toRelease): the
// PV of every ordinary detach, which is not being deleted, would only be
// read and left as it is.
func TestReleasedBy(t *testing.T) {
	tests := []struct {
		name string
		pv   *pvCase // nil: not in the cache
		want bool
	}{
		{name: "in use, not deleted", pv: &pvCase{ours: true}},
		{name: "deleted, our finalizer", pv: &pvCase{ours: true, deleting: true}, want: true},
		{name: "deleted, without our finalizer", pv: &pvCase{other: true, deleting: true}},
		{name: "migration rolled back", pv: &pvCase{ours: true, inTree: "disk"}, want: true},
		{name: "still migrated to us", pv: &pvCase{ours: true, inTree: "disk", migratedTo: driver}},
		{name: "not cached (its own events queue it)", pv: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme)
			if tt.pv != nil {
				b.WithObjects(tt.pv.build())
			}
			r := &Reconciler{Client: b.Build(), DriverName: driver, finalizer: volume.FinalizerName(driver)}
			va := &storagev1.VolumeAttachment{
				ObjectMeta: metav1.ObjectMeta{Name: "va-1"},
				Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "node-1",
					Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-1")}},
			}
			reqs := r.releasedBy(context.Background(), va)
			if got := len(reqs) == 1 && reqs[0].Name == "pv-1"; got != tt.want || (!tt.want && len(reqs) != 0) {
				t.Fatalf("releasedBy = %v, want the PV queued: %v", reqs, tt.want)
			}
		})
	}
	// An inline volume names no PV.
	r := &Reconciler{Client: fake.NewClientBuilder().Build(), DriverName: driver, finalizer: volume.FinalizerName(driver)}
	if reqs := r.releasedBy(context.Background(), &storagev1.VolumeAttachment{}); len(reqs) != 0 {
		t.Fatalf("releasedBy(inline) = %v, want nothing", reqs)
	}
}
