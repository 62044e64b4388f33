package volumeattachment

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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

// TestChangeMatters checks which VolumeAttachment updates queue the
// attachment: every change except our own error writes, which would retry
// at once and defeat the backoff.
func TestChangeMatters(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	attachErr := &storagev1.VolumeError{Time: at, Message: "rpc error: code = Internal desc = boom"}
	detachErr := &storagev1.VolumeError{Time: at, Message: "rpc error: code = Unavailable desc = down"}
	base := func() *storagev1.VolumeAttachment {
		return &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: "va", ResourceVersion: "1", Finalizers: []string{"external-attacher/csi-example-com"}},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: "csi.example.com", NodeName: "node-1",
				Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv")}},
		}
	}
	tests := []struct {
		name   string
		old    func(*storagev1.VolumeAttachment)
		change func(*storagev1.VolumeAttachment)
		want   bool
	}{
		{name: "an attach error written", change: func(va *storagev1.VolumeAttachment) { va.Status.AttachError = attachErr }},
		{name: "a detach error written", change: func(va *storagev1.VolumeAttachment) { va.Status.DetachError = detachErr }},
		{name: "an attach error replaced by another",
			old: func(va *storagev1.VolumeAttachment) { va.Status.AttachError = attachErr },
			change: func(va *storagev1.VolumeAttachment) {
				va.Status.AttachError = &storagev1.VolumeError{Time: at, Message: "other"}
			}},
		{name: "an error written, with its managed fields",
			change: func(va *storagev1.VolumeAttachment) {
				va.Status.AttachError = attachErr
				va.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "csi-attacher", Subresource: "status"}}
			}},
		{name: "an update that changes nothing we look at", change: func(*storagev1.VolumeAttachment) {}, want: true},
		{name: "a label, no error anywhere", change: func(va *storagev1.VolumeAttachment) { va.Labels = map[string]string{"a": "b"} }, want: true},
		// Clearing an error alone is our own status write too.
		{name: "the error cleared",
			old:    func(va *storagev1.VolumeAttachment) { va.Status.AttachError = attachErr },
			change: func(va *storagev1.VolumeAttachment) { va.Status.AttachError = nil }},
		{name: "an error written with the node moved",
			change: func(va *storagev1.VolumeAttachment) {
				va.Status.AttachError = attachErr
				va.Spec.NodeName = "node-2"
			}, want: true},
		{name: "an error kept while the finalizer goes",
			old:    func(va *storagev1.VolumeAttachment) { va.Status.DetachError = detachErr },
			change: func(va *storagev1.VolumeAttachment) { va.Finalizers = nil }, want: true},
		{name: "an error kept while the attachment is deleted",
			old:    func(va *storagev1.VolumeAttachment) { va.Status.AttachError = attachErr },
			change: func(va *storagev1.VolumeAttachment) { va.DeletionTimestamp = &at }, want: true},
		{name: "an error written as the attachment becomes attached",
			change: func(va *storagev1.VolumeAttachment) {
				va.Status.DetachError = detachErr
				va.Status.Attached = true
			}, want: true},
	}
	p := changeMatters()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldVA := base()
			if tt.old != nil {
				tt.old(oldVA)
			}
			newVA := oldVA.DeepCopy()
			newVA.ResourceVersion = "2"
			tt.change(newVA)
			if got := p.Update(event.UpdateEvent{ObjectOld: oldVA, ObjectNew: newVA}); got != tt.want {
				t.Fatalf("Update = %v, want %v", got, tt.want)
			}
		})
	}
	// A resync (same resourceVersion) always passes, errors or not.
	va := base()
	va.Status.AttachError = attachErr
	if !p.Update(event.UpdateEvent{ObjectOld: va, ObjectNew: va.DeepCopy()}) {
		t.Fatal("a resync was dropped")
	}
	// Creations, deletions and generic events are not its business.
	if !p.Create(event.CreateEvent{Object: va}) || !p.Delete(event.DeleteEvent{Object: va}) || !p.Generic(event.GenericEvent{Object: va}) {
		t.Fatal("changeMatters dropped a non-update event")
	}
}
