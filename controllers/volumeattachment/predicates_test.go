package volumeattachment

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// TestSpecOrDeletionChanged checks which PersistentVolume and CSINode
// updates retry the attachments that use them: a changed spec, a
// deletion, and, for an in-tree PV, a change of the labels and annotations
// csi-translation-lib reads; never other metadata (our own finalizer
// patches among them).
func TestSpecOrDeletionChanged(t *testing.T) {
	gcePD := func() *corev1.PersistentVolume {
		return &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name:            "pv",
				ResourceVersion: "1",
				Labels:          map[string]string{corev1.LabelTopologyZone: "us-central1-a", "app": "db"},
				Annotations: map[string]string{
					"pv.kubernetes.io/migrated-to":    "pd.csi.storage.gke.io",
					"openstorage.io/auth-secret-name": "px-auth",
					"note":                            "x",
				},
			},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "disk"},
			}},
		}
	}
	csiPV := func() *corev1.PersistentVolume {
		pv := gcePD()
		pv.Spec.GCEPersistentDisk = nil
		pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "pd.csi.storage.gke.io", VolumeHandle: "h"}
		return pv
	}
	now := metav1.Now()
	tests := []struct {
		name   string
		old    func() *corev1.PersistentVolume
		change func(*corev1.PersistentVolume)
		want   bool
	}{
		{"nothing", gcePD, func(*corev1.PersistentVolume) {}, false},
		{"spec", gcePD, func(pv *corev1.PersistentVolume) { pv.Spec.GCEPersistentDisk.ReadOnly = true }, true},
		{"deletion", gcePD, func(pv *corev1.PersistentVolume) { pv.DeletionTimestamp = &now }, true},
		{"finalizer", gcePD, func(pv *corev1.PersistentVolume) { pv.Finalizers = []string{"external-attacher/x"} }, false},
		{"other label", gcePD, func(pv *corev1.PersistentVolume) { pv.Labels["app"] = "web" }, false},
		{"other annotation", gcePD, func(pv *corev1.PersistentVolume) { pv.Annotations["note"] = "y" }, false},
		{"zone label changed", gcePD, func(pv *corev1.PersistentVolume) { pv.Labels[corev1.LabelTopologyZone] = "us-central1-b" }, true},
		{"zone label removed", gcePD, func(pv *corev1.PersistentVolume) { delete(pv.Labels, corev1.LabelTopologyZone) }, true},
		{"beta zone label added", gcePD, func(pv *corev1.PersistentVolume) {
			pv.Labels[corev1.LabelFailureDomainBetaZone] = "us-central1-a"
		}, true},
		{"region label added", gcePD, func(pv *corev1.PersistentVolume) { pv.Labels[corev1.LabelTopologyRegion] = "us-central1" }, true},
		{"beta region label added", gcePD, func(pv *corev1.PersistentVolume) {
			pv.Labels[corev1.LabelFailureDomainBetaRegion] = "us-central1"
		}, true},
		{"labels from none", gcePD, func(pv *corev1.PersistentVolume) { pv.Labels = nil }, true},
		{"Portworx secret name", gcePD, func(pv *corev1.PersistentVolume) {
			pv.Annotations["openstorage.io/auth-secret-name"] = "other"
		}, true},
		{"Portworx secret namespace added", gcePD, func(pv *corev1.PersistentVolume) {
			pv.Annotations["openstorage.io/auth-secret-namespace"] = "kube-system"
		}, true},
		{"Azure File resource group added", gcePD, func(pv *corev1.PersistentVolume) {
			pv.Annotations["kubernetes.io/azure-file-resource-group"] = "rg"
		}, true},
		// A CSI PV is not translated: its labels and annotations mean
		// nothing to the attach.
		{"CSI PV zone label", csiPV, func(pv *corev1.PersistentVolume) { pv.Labels[corev1.LabelTopologyZone] = "us-central1-b" }, false},
		{"CSI PV spec", csiPV, func(pv *corev1.PersistentVolume) { pv.Spec.CSI.ReadOnly = true }, true},
	}
	p := specOrDeletionChanged()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := tc.old()
			updated := old.DeepCopy()
			updated.ResourceVersion = "2"
			tc.change(updated)
			if got := p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}); got != tc.want {
				t.Errorf("Update = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("CSINode metadata only", func(t *testing.T) {
		old := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}}}
		updated := old.DeepCopy()
		updated.Labels[corev1.LabelTopologyZone] = "z"
		if p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}) {
			t.Error("a CSINode's metadata does not change an attachment")
		}
	})
	t.Run("CSINode spec", func(t *testing.T) {
		old := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
		updated := old.DeepCopy()
		updated.Spec.Drivers = []storagev1.CSINodeDriver{{Name: "d", NodeID: "id"}}
		if !p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}) {
			t.Error("a CSINode's spec change retries its attachments")
		}
	})
}
