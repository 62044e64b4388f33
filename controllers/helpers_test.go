package controllers_test

import (
	"context"
	"fmt"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var nameSeq atomic.Int64

// uniqueName gives cluster-scoped objects of different tests distinct names.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, GinkgoParallelProcess(), nameSeq.Add(1))
}

// tracker creates objects for one test and removes them afterwards,
// stripping finalizers first: envtest runs no garbage collector.
type tracker struct{ objs []client.Object }

func (t *tracker) create(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	t.objs = append(t.objs, obj)
}

// specObjects gives each spec of the enclosing container a fresh tracker
// whose objects are deleted after the spec. Its cleanup is registered
// before anything the spec itself defers, so it runs last: after the
// attachers a spec started have stopped.
func specObjects() *tracker {
	t := &tracker{}
	BeforeEach(func() {
		*t = tracker{}
		DeferCleanup(t.cleanup, context.Background())
	})
	return t
}

func (t *tracker) cleanup(ctx context.Context) {
	for i := len(t.objs) - 1; i >= 0; i-- {
		obj := t.objs[i]
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			continue
		}
		if len(obj.GetFinalizers()) > 0 {
			obj.SetFinalizers(nil)
			_ = k8sClient.Update(ctx, obj)
		}
		_ = k8sClient.Delete(ctx, obj)
	}
}

func newCSINode(node, driver, nodeID string) *storagev1.CSINode {
	return &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name: driver, NodeID: nodeID,
		}}},
	}
}

func newPV(name, driver, handle string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver:           driver,
				VolumeHandle:     handle,
				VolumeAttributes: map[string]string{"pool": "fast"},
			}},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		},
	}
}

func newVA(name, driver, node, pv string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: driver,
			NodeName: node,
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pv)},
		},
	}
}

func getVA(ctx context.Context, name string) (*storagev1.VolumeAttachment, error) {
	va := &storagev1.VolumeAttachment{}
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, va)
	return va, err
}

func getPV(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	pv := &corev1.PersistentVolume{}
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, pv)
	return pv, err
}

// expectAttached waits until the VolumeAttachment is attached without error
// and returns it.
func expectAttached(ctx context.Context, name string) *storagev1.VolumeAttachment {
	GinkgoHelper()
	var va *storagev1.VolumeAttachment
	Eventually(func(g Gomega) {
		var err error
		va, err = getVA(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(va.Status.Attached).To(BeTrue())
		g.Expect(va.Status.AttachError).To(BeNil())
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	return va
}

// expectAttachError waits until status.attachError contains substring and
// returns the VolumeAttachment.
func expectAttachError(ctx context.Context, name, substring string) *storagev1.VolumeAttachment {
	GinkgoHelper()
	var va *storagev1.VolumeAttachment
	Eventually(func(g Gomega) {
		var err error
		va, err = getVA(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(va.Status.AttachError).NotTo(BeNil())
		g.Expect(va.Status.AttachError.Message).To(ContainSubstring(substring))
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	return va
}

func expectGone(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(BeTrue(), "%T %s should be gone", obj, obj.GetName())
}
