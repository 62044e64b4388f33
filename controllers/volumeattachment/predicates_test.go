package volumeattachment

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/volume"
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

// TestWorkToDo checks that the events of VolumeAttachments a reconcile
// would leave as they are queue nothing: the initial list after a restart
// in a cluster of attached volumes, and the update our own status patch
// brings back, nor deletions, while everything with work to do, and every
// forced sync, still does.
func TestWorkToDo(t *testing.T) {
	ours := []string{volume.FinalizerName(mapDriver)}
	p := workToDo(queue.IdleAttachment(ours[0]))
	tests := []struct {
		name string
		va   mapVA
		want bool
	}{
		{"attached", mapVA{driver: mapDriver, attached: true, finalizers: ours}, false},
		{"attached, stale attach error", mapVA{driver: mapDriver, attached: true, attachErr: true, finalizers: ours}, false},
		{"not attached yet", mapVA{driver: mapDriver}, true},
		{"failed attach", mapVA{driver: mapDriver, attachErr: true, finalizers: ours}, true},
		{"being deleted with our finalizer", mapVA{driver: mapDriver, attached: true, deleting: true, finalizers: ours}, true},
		{"being deleted, detached", mapVA{driver: mapDriver, deleting: true, finalizers: []string{"example.com/keep"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			va := tt.va.build()
			g.Expect(p.Create(event.CreateEvent{Object: va, IsInInitialList: true})).To(Equal(tt.want), "initial list")
			g.Expect(p.Create(event.CreateEvent{Object: va})).To(Equal(tt.want), "created")
			old := va.DeepCopy()
			old.ResourceVersion = "1"
			g.Expect(p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: va})).To(Equal(tt.want), "updated")
			g.Expect(p.Delete(event.DeleteEvent{Object: va})).To(BeFalse(), "deleted: the informer hook forgets it")
			g.Expect(p.Generic(event.GenericEvent{Object: va})).To(BeTrue(), "forced sync")
		})
	}
}

// TestInitialListOfDependencies checks that the PersistentVolumes and
// CSINodes of the informers' initial lists are not mapped back to
// attachments (the attachments' own initial list queues them), while the
// ones created later are.
func TestInitialListOfDependencies(t *testing.T) {
	p := specOrDeletionChanged()
	for _, o := range []client.Object{&corev1.PersistentVolume{}, &storagev1.CSINode{}} {
		if p.Create(event.CreateEvent{Object: o, IsInInitialList: true}) {
			t.Errorf("%T of the initial list passes", o)
		}
		if !p.Create(event.CreateEvent{Object: o}) {
			t.Errorf("%T created after the initial list is dropped", o)
		}
	}
}

// TestAttachmentsOfLeavesIdleOut checks that a change of a PV or CSINode
// queues the attachments that may wait for it, and not the attached ones
// that use it: on a node of hundreds of attached volumes, re-registering
// its driver queued hundreds of no-op reconciles.
func TestAttachmentsOfLeavesIdleOut(t *testing.T) {
	ours := []string{volume.FinalizerName(mapDriver)}
	vas := []mapVA{
		{name: "attached", driver: mapDriver, pv: "pv", attached: true, finalizers: ours},
		{name: "waiting", driver: mapDriver, pv: "pv", attachErr: true},
		{name: "detaching", driver: mapDriver, pv: "pv", attached: true, deleting: true, finalizers: ours},
		{name: "another-driver", driver: "other.csi.test", pv: "pv"},
	}
	scheme := runtime.NewScheme()
	NewWithT(t).Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	b := fake.NewClientBuilder().WithScheme(scheme)
	for _, v := range vas {
		b = b.WithObjects(v.build())
	}
	NewWithT(t).Expect(cache.SetupIndexes(context.Background(), builderIndexer{b}, mapDriver)).To(Succeed())
	c := b.Build()
	for _, tt := range []struct {
		index string
		obj   client.Object
	}{
		{cache.IndexVAByPV, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv"}}},
		{cache.IndexVAByNode, &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node"}}},
	} {
		t.Run(tt.index, func(t *testing.T) {
			var got []string
			for _, req := range attachmentsOf(c, mapDriver, tt.index, queue.IdleAttachment(ours[0]))(context.Background(), tt.obj) {
				got = append(got, req.Name)
			}
			slices.Sort(got)
			NewWithT(t).Expect(got).To(Equal([]string{"detaching", "waiting"}))
		})
	}
}

// TestChangeMatters checks which VolumeAttachment updates queue the
// attachment: every change except the ones our own writes bring back that
// need no reaction (an error, which would retry at once and defeat the
// backoff; the finalizer with the node-ID annotation, whose reconcile goes
// on to publish by itself).
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
		// A new resourceVersion with nothing else changed: nothing to act on.
		{name: "an update that changes nothing we look at", change: func(*storagev1.VolumeAttachment) {}},
		// Our own patch before a publish: the reconcile that sent it goes on
		// to publish by itself.
		{name: "our finalizer and node-ID annotation",
			old: func(va *storagev1.VolumeAttachment) { va.Finalizers = nil },
			change: func(va *storagev1.VolumeAttachment) {
				va.Finalizers = []string{"external-attacher/csi-example-com"}
				va.Annotations = map[string]string{volume.NodeIDAnnotation: "id"}
			}},
		{name: "attached by someone else", change: func(va *storagev1.VolumeAttachment) { va.Status.Attached = true }, want: true},
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
		// Our detach removes the finalizer; the object is then gone.
		{name: "an error kept while the finalizer goes",
			old:    func(va *storagev1.VolumeAttachment) { va.Status.DetachError = detachErr },
			change: func(va *storagev1.VolumeAttachment) { va.Finalizers = nil }},
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
