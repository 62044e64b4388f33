package volumeattachment

import (
	"context"
	"slices"
	"testing"

	"github.com/csi-attacher/csi-attacher/internal/cache"

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

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

const mapDriver = "map.csi.test"

// builderIndexer registers SetupIndexes' indexes with a fake client.
type builderIndexer struct{ b *fake.ClientBuilder }

func (i builderIndexer) IndexField(_ context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	i.b.WithIndex(obj, field, extract)
	return nil
}

func secretPV(name string, ref *corev1.SecretReference) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
			Driver: mapDriver, VolumeHandle: "h-" + name, ControllerPublishSecretRef: ref,
		}}},
	}
}

// mapVA describes a VolumeAttachment of the mapping test compactly.
type mapVA struct {
	name, driver, pv string
	inline           *corev1.SecretReference
	attached         bool
	attachErr        bool
	detachErr        bool
	deleting         bool
	finalizers       []string
}

func (m mapVA) build() *storagev1.VolumeAttachment {
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: m.name, Finalizers: m.finalizers},
		Spec:       storagev1.VolumeAttachmentSpec{Attacher: m.driver, NodeName: "node"},
		Status:     storagev1.VolumeAttachmentStatus{Attached: m.attached},
	}
	if m.inline != nil {
		va.Spec.Source.InlineVolumeSpec = &corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			CSI: &corev1.CSIPersistentVolumeSource{Driver: m.driver, VolumeHandle: "h-" + m.name, ControllerPublishSecretRef: m.inline},
		}}
	} else {
		va.Spec.Source.PersistentVolumeName = ptr.To(m.pv)
	}
	if m.attachErr {
		va.Status.AttachError = &storagev1.VolumeError{Message: "failed to load secret"}
	}
	if m.detachErr {
		va.Status.DetachError = &storagev1.VolumeError{Message: "failed to load secret"}
	}
	if m.deleting {
		va.DeletionTimestamp = ptr.To(metav1.Now())
	}
	return va
}

func TestAttachmentsUsingSecret(t *testing.T) {
	ours := []string{volume.FinalizerName(mapDriver)}
	shared := &corev1.SecretReference{Namespace: "default", Name: "shared"}
	pvs := []client.Object{
		secretPV("pv-a", shared),
		secretPV("pv-b", shared),
		secretPV("pv-other-ns", &corev1.SecretReference{Namespace: "other", Name: "shared"}),
		secretPV("pv-none", nil),
	}
	vas := []mapVA{
		{name: "attach-failed", driver: mapDriver, pv: "pv-a", attachErr: true, finalizers: ours},
		{name: "not-attached-yet", driver: mapDriver, pv: "pv-b"},
		{name: "attached", driver: mapDriver, pv: "pv-a", attached: true, finalizers: ours},
		{name: "attached-stale-detach-error", driver: mapDriver, pv: "pv-b", attached: true, detachErr: true, finalizers: ours},
		{name: "another-driver", driver: "other.csi.test", pv: "pv-a", attachErr: true},
		{name: "inline-failed", driver: mapDriver, inline: shared, attachErr: true},
		{name: "inline-attached", driver: mapDriver, inline: shared, attached: true, finalizers: ours},
		{name: "detach-failed", driver: mapDriver, pv: "pv-b", attached: true, detachErr: true, deleting: true, finalizers: ours},
		{name: "inline-detach-failed", driver: mapDriver, inline: shared, attached: true, detachErr: true, deleting: true, finalizers: ours},
		{name: "detaching", driver: mapDriver, pv: "pv-a", attached: true, deleting: true, finalizers: ours},
		{name: "detached-held-by-other", driver: mapDriver, pv: "pv-b", detachErr: true, deleting: true, finalizers: []string{"example.com/keep"}},
		{name: "other-namespace", driver: mapDriver, pv: "pv-other-ns", attachErr: true},
		{name: "no-secret", driver: mapDriver, pv: "pv-none", attachErr: true},
	}
	scheme := runtime.NewScheme()
	NewWithT(t).Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pvs...)
	for _, v := range vas {
		b = b.WithObjects(v.build())
	}
	NewWithT(t).Expect(cache.SetupIndexes(context.Background(), builderIndexer{b}, mapDriver)).To(Succeed())
	r := &Reconciler{Client: b.Build(), DriverName: mapDriver, finalizer: volume.FinalizerName(mapDriver)}

	tests := []struct {
		name             string
		secretNS, secret string
		deleting         bool
		want             []string
	}{
		{"attach side: failed or waiting, through PVs and inline", "default", "shared", false,
			[]string{"attach-failed", "inline-failed", "not-attached-yet"}},
		{"detach side: failed detaches that still hold our finalizer", "default", "shared", true,
			[]string{"detach-failed", "inline-detach-failed"}},
		{"same name in another namespace", "other", "shared", false, []string{"other-namespace"}},
		{"a Secret nobody names", "default", "unused", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			secret := cache.SecretMetadata()
			secret.Namespace, secret.Name = tt.secretNS, tt.secret
			var got []string
			for _, req := range r.attachmentsUsingSecret(tt.deleting)(context.Background(), secret) {
				got = append(got, req.Name)
			}
			slices.Sort(got)
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestRetryOnSecretChange(t *testing.T) {
	ours := []string{volume.FinalizerName(mapDriver)}
	r := &Reconciler{DriverName: mapDriver, finalizer: volume.FinalizerName(mapDriver)}
	const attach, detach = false, true
	tests := []struct {
		name string
		va   mapVA
		side bool
		want bool
	}{
		{"new", mapVA{driver: mapDriver}, attach, true},
		{"attach error before the finalizer", mapVA{driver: mapDriver, attachErr: true}, attach, true},
		{"attach error after the finalizer", mapVA{driver: mapDriver, attachErr: true, finalizers: ours}, attach, true},
		{"attached", mapVA{driver: mapDriver, attached: true, finalizers: ours}, attach, false},
		{"failed forced re-publish", mapVA{driver: mapDriver, attached: true, attachErr: true, finalizers: ours}, attach, true},
		{"attached, stale detach error", mapVA{driver: mapDriver, attached: true, detachErr: true, finalizers: ours}, attach, false},
		{"another driver's, failed", mapVA{driver: "other.csi.test", attachErr: true}, attach, false},
		{"new, asked by the detach side", mapVA{driver: mapDriver}, detach, false},
		{"detach error", mapVA{driver: mapDriver, deleting: true, detachErr: true, finalizers: ours}, detach, true},
		{"detach error, asked by the attach side", mapVA{driver: mapDriver, deleting: true, detachErr: true, finalizers: ours}, attach, false},
		{"being detached", mapVA{driver: mapDriver, deleting: true, attached: true, finalizers: ours}, detach, false},
		{"being deleted after a failed attach", mapVA{driver: mapDriver, deleting: true, attachErr: true, finalizers: ours}, detach, false},
		{"detached, held by another finalizer", mapVA{driver: mapDriver, deleting: true, detachErr: true, finalizers: []string{"example.com/keep"}}, detach, false},
		{"another driver's, failed detach", mapVA{driver: "other.csi.test", deleting: true, detachErr: true, finalizers: ours}, detach, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(r.retryOnSecretChange(tt.va.build(), tt.side)).To(Equal(tt.want))
		})
	}
}

func TestSecretChanged(t *testing.T) {
	g := NewWithT(t)
	p := secretChanged()
	v1, v2 := cache.SecretMetadata(), cache.SecretMetadata()
	v1.ResourceVersion, v2.ResourceVersion = "1", "2"
	g.Expect(p.Create(event.CreateEvent{Object: v1})).To(BeTrue(), "a Secret that appears")
	g.Expect(p.Create(event.CreateEvent{Object: v1, IsInInitialList: true})).To(BeFalse(),
		"a Secret of the initial list: the attachments' own initial list queues them")
	g.Expect(p.Update(event.UpdateEvent{ObjectOld: v1, ObjectNew: v2})).To(BeTrue(), "a new version")
	g.Expect(p.Update(event.UpdateEvent{ObjectOld: v1, ObjectNew: v1.DeepCopy()})).To(BeFalse(), "a resync")
	g.Expect(p.Delete(event.DeleteEvent{Object: v1})).To(BeFalse())
	g.Expect(p.Generic(event.GenericEvent{Object: v1})).To(BeFalse())
}

func TestTrimSecret(t *testing.T) {
	meta := metav1.ObjectMeta{
		Name: "s", Namespace: "ns", UID: "uid-s", ResourceVersion: "7", Generation: 1,
		Labels:          map[string]string{"app": "db"},
		Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"cGF6eg=="}}`},
		Finalizers:      []string{"example.com/keep"},
		OwnerReferences: []metav1.OwnerReference{{Name: "owner"}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
	want := metav1.ObjectMeta{Name: "s", Namespace: "ns", UID: "uid-s", ResourceVersion: "7"}
	trim := cache.TrimSecret()

	g := NewWithT(t)
	partial := cache.SecretMetadata()
	partial.ObjectMeta = meta
	out, err := trim(partial)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(BeAssignableToTypeOf(&metav1.PartialObjectMetadata{}))
	g.Expect(out.(*metav1.PartialObjectMetadata).ObjectMeta).To(Equal(want))
	g.Expect(out.(*metav1.PartialObjectMetadata).TypeMeta).To(Equal(partial.TypeMeta))

	out, err = trim(&corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"password": []byte("pazz")}, StringData: map[string]string{"k": "v"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal(&corev1.Secret{ObjectMeta: want}), "no data, whatever the type")
}
