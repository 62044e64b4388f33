package persistentvolume

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// TestToRelease checks that only the PersistentVolumes Reconcile may
// release are queued by their own events: an attached volume of the driver,
// which carries our finalizer for as long as it is attached, is not, so a
// restart among 100 000 of them queues none.
func TestToRelease(t *testing.T) {
	const driver = "pd.csi.storage.gke.io"
	ours := []string{volume.FinalizerName(driver)}
	now := metav1.Now()
	csiPV := func(finalizers []string, deleting bool) *corev1.PersistentVolume {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv", Finalizers: finalizers},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "h"},
			}},
		}
		if deleting {
			pv.DeletionTimestamp = &now
		}
		return pv
	}
	inTree := func(migratedTo string) *corev1.PersistentVolume {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv", Finalizers: ours, Annotations: map[string]string{}},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "disk"},
			}},
		}
		if migratedTo != "" {
			pv.Annotations[volume.MigratedToAnnotation] = migratedTo
		}
		return pv
	}
	tests := []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{"in use, with our finalizer", csiPV(ours, false), false},
		{"being deleted, with our finalizer", csiPV(ours, true), true},
		{"being deleted, without our finalizer", csiPV([]string{"kubernetes.io/pv-protection"}, true), false},
		{"in-tree, migrated to the driver", inTree(driver), false},
		{"in-tree, migration rolled back", inTree(""), true},
	}
	p := toRelease(ours[0], driver)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Create(event.CreateEvent{Object: tt.pv, IsInInitialList: true}); got != tt.want {
				t.Errorf("Create = %v, want %v", got, tt.want)
			}
			old := tt.pv.DeepCopy()
			old.ResourceVersion = "1"
			if got := p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: tt.pv}); got != tt.want {
				t.Errorf("Update = %v, want %v", got, tt.want)
			}
		})
	}
}
