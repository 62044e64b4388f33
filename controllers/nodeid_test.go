package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

var _ = Describe("The node ID a volume is unpublished from", func() {
	const driverName = "nodeid.csi.test"
	ctx := context.Background()
	objs := specObjects()

	// attach publishes a new volume on a new node whose CSINode gives oldID,
	// and returns the VolumeAttachment and the volume handle.
	attach := func(node, oldID string, finalizers ...string) (*storagev1.VolumeAttachment, string) {
		GinkgoHelper()
		objs.create(ctx, newCSINode(node, driverName, oldID))
		handle := uniqueName("nid-vol")
		pv := newPV(uniqueName("nid-pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("nid-va"), driverName, node, pv.Name)
		va.Finalizers = finalizers
		objs.create(ctx, va)
		got := expectAttached(ctx, va.Name)
		Expect(got.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, oldID))
		return got, handle
	}

	// reregister replaces the node's CSINode with one that gives newID, as
	// when the node is recreated under the same name: a CSINode driver's
	// nodeID is immutable, so the entry is removed and registered again.
	reregister := func(node, newID string) {
		GinkgoHelper()
		old := &storagev1.CSINode{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Name: node}, old)).To(Succeed())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		expectGone(ctx, old)
		objs.create(ctx, newCSINode(node, driverName, newID))
	}

	It("is the annotated one after the node re-registered with a new ID, and the ListVolumes pass then finds nothing to repeat", func() {
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync})
		node := uniqueName("nid-node")
		oldID, newID := "old-"+node, "new-"+node
		// Another finalizer keeps the object after our detach, so the
		// ListVolumes pass keeps looking at it.
		const keep = "example.com/keep"
		va, handle := attach(node, oldID, keep)
		Expect(a.driver.Published(handle)).To(Equal([]string{oldID}))

		reregister(node, newID)
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(Equal([]string{keep}))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		Expect(unpublishedFrom(a.driver, handle)).To(Equal([]string{oldID}), "unpublished from the ID it was published to")
		Expect(a.driver.Published(handle)).To(BeEmpty())

		// Several passes later: nothing still published, nothing repeated.
		Consistently(func() []string { return unpublishedFrom(a.driver, handle) }).
			WithTimeout(5 * reconcileSync).WithPolling(pollInterval).Should(Equal([]string{oldID}))
		Expect(a.driver.Published(handle)).To(BeEmpty())

		got, err := getVA(ctx, va.Name)
		Expect(err).NotTo(HaveOccurred())
		got.Finalizers = nil
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		expectGone(ctx, got)
	})

	It("falls back to the CSINode when the VolumeAttachment has no node-ID annotation", func() {
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync})
		node := uniqueName("nid-node")
		nodeID := "id-" + node
		va, handle := attach(node, nodeID)

		// An attachment written before the annotation existed.
		drop := `{"metadata":{"annotations":{"` + volume.NodeIDAnnotation + `":null}}}`
		Expect(k8sClient.Patch(ctx, va, client.RawPatch(types.MergePatchType, []byte(drop)))).To(Succeed())
		Expect(va.Annotations).NotTo(HaveKey(volume.NodeIDAnnotation))
		// The ListVolumes pass resolves the same node ID: no drift.
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(4 * reconcileSync).WithPolling(pollInterval).Should(Equal(1))

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(unpublishedFrom(a.driver, handle)).To(Equal([]string{nodeID}))
		Expect(a.driver.Published(handle)).To(BeEmpty())
	})
})
