package persistentvolume

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// A driver that took over an in-tree plugin, so that a rolled-back
// migration can be expressed.
const driver = "pd.csi.storage.gke.io"

const other = "example.com/other"

// builderIndexer registers cache.SetupIndexes' indexes with a fake client.
type builderIndexer struct{ b *fake.ClientBuilder }

func (i builderIndexer) IndexField(_ context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	i.b.WithIndex(obj, field, extract)
	return nil
}

// pvCase describes the PersistentVolume of a case.
type pvCase struct {
	deleting bool
	ours     bool // our finalizer
	other    bool // another controller's finalizer
	inTree   string
	// migratedTo is the in-tree PV's pv.kubernetes.io/migrated-to.
	migratedTo string
}

func (c pvCase) build() *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1", UID: "uid-pv-1"}}
	if c.ours {
		pv.Finalizers = append(pv.Finalizers, volume.FinalizerName(driver))
	}
	if c.other {
		pv.Finalizers = append(pv.Finalizers, other)
	}
	if c.deleting {
		pv.DeletionTimestamp = ptr.To(metav1.Now())
	}
	if c.inTree != "" {
		pv.Spec.GCEPersistentDisk = &corev1.GCEPersistentDiskVolumeSource{PDName: c.inTree}
		if c.migratedTo != "" {
			pv.Annotations = map[string]string{volume.MigratedToAnnotation: c.migratedTo}
		}
	} else {
		pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "h-1"}
	}
	return pv
}

// The decision: release our finalizer from a PersistentVolume being
// deleted, or whose CSI migration was rolled back, once no VolumeAttachment
// of any driver names it; keep it otherwise.
func TestReconcile(t *testing.T) {
	tests := []struct {
		name     string
		pv       *pvCase // nil: no PersistentVolume
		vaDriver string  // a VolumeAttachment of this driver names the PV
		stale    bool
		released bool
		result   ctrl.Result
	}{
		{name: "in use, not deleted", pv: &pvCase{ours: true}, vaDriver: driver},
		{name: "unused, not deleted", pv: &pvCase{ours: true}},
		{name: "deleted and unused", pv: &pvCase{ours: true, deleting: true}, released: true},
		{name: "deleted, another finalizer stays", pv: &pvCase{ours: true, other: true, deleting: true}, released: true},
		{name: "deleted, used by our attachment", pv: &pvCase{ours: true, deleting: true}, vaDriver: driver},
		{name: "deleted, used by another driver's attachment", pv: &pvCase{ours: true, deleting: true}, vaDriver: "other.example.com"},
		{name: "deleted, without our finalizer", pv: &pvCase{other: true, deleting: true}},
		{name: "migration rolled back, unused", pv: &pvCase{ours: true, inTree: "disk"}, released: true},
		{name: "migration rolled back, in use", pv: &pvCase{ours: true, inTree: "disk"}, vaDriver: driver},
		{name: "still migrated to us, unused", pv: &pvCase{ours: true, inTree: "disk", migratedTo: driver}},
		{name: "migrated to another driver, unused", pv: &pvCase{ours: true, inTree: "disk", migratedTo: "other.example.com"}, released: true},
		// Older than our own last write: nothing is decided on it, and it
		// is looked at again shortly, as a stale VolumeAttachment is.
		{name: "deleted and unused, but stale", pv: &pvCase{ours: true, deleting: true}, stale: true,
			result: ctrl.Result{RequeueAfter: queue.StaleRecheck}},
		{name: "gone", pv: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme)
			if err := cache.SetupIndexes(ctx, builderIndexer{b}, driver); err != nil {
				t.Fatal(err)
			}
			var pv *corev1.PersistentVolume
			if tt.pv != nil {
				pv = tt.pv.build()
				b.WithObjects(pv)
			}
			if tt.vaDriver != "" {
				b.WithObjects(&storagev1.VolumeAttachment{
					ObjectMeta: metav1.ObjectMeta{Name: "va-1"},
					Spec: storagev1.VolumeAttachmentSpec{Attacher: tt.vaDriver, NodeName: "node-1",
						Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-1")}},
				})
			}
			c := b.Build()
			tracker := freshness.New()
			if tt.stale {
				tracker.Wrote(pv.UID, "1000000")
			}
			r := &Reconciler{Client: c, DriverName: driver, Freshness: tracker, finalizer: volume.FinalizerName(driver)}

			result, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "pv-1"}})
			if err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			if result != tt.result {
				t.Fatalf("result = %+v, want %+v", result, tt.result)
			}
			if pv == nil {
				return
			}
			after := &corev1.PersistentVolume{}
			err = c.Get(ctx, client.ObjectKey{Name: "pv-1"}, after)
			if apierrors.IsNotFound(err) {
				// Our finalizer was the last one of a PV being deleted.
				if !tt.released || tt.pv.other {
					t.Fatal("the PersistentVolume is gone")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hasOurs := slices.Contains(after.Finalizers, volume.FinalizerName(driver))
			if hasOurs != (tt.pv.ours && !tt.released) {
				t.Fatalf("finalizers = %v, want ours released: %v", after.Finalizers, tt.released)
			}
			if tt.pv.other && !slices.Contains(after.Finalizers, other) {
				t.Fatalf("finalizers = %v, the other controller's is gone", after.Finalizers)
			}
		})
	}
}
