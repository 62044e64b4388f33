package controllers_test

import (
	"context"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// A publish whose outcome was never recorded (it timed out, or its status
// write was lost) may have left the volume published to the node ID of
// that attempt. When the node then registers again with a new ID, the
// retry must unpublish the old ID before the annotation moves to the new
// one: afterwards nothing (detach, the ListVolumes pass) looks there again.
var _ = Describe("A publish retried after the node registered again", func() {
	const driverName = "moved.csi.test"
	ctx := context.Background()
	objs := specObjects()

	// reregister replaces the node's CSINode with one that gives newID: a
	// CSINode driver's nodeID is immutable, so the node removes the entry and
	// registers again.
	reregister := func(node, newID string) {
		GinkgoHelper()
		old := &storagev1.CSINode{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Name: node}, old)).To(Succeed())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		expectGone(ctx, old)
		objs.create(ctx, newCSINode(node, driverName, newID))
	}
	// create makes a node registered as oldID and a VolumeAttachment of a
	// new volume on it, and returns the attachment and the volume handle.
	create := func() (va *storagev1.VolumeAttachment, node, handle string) {
		GinkgoHelper()
		node = uniqueName("mv-node")
		objs.create(ctx, newCSINode(node, driverName, "old-"+node))
		handle = uniqueName("mv-vol")
		pv := newPV(uniqueName("mv-pv"), driverName, handle)
		objs.create(ctx, pv)
		va = newVA(uniqueName("mv-va"), driverName, node, pv.Name)
		return va, node, handle
	}
	annotation := func(name string) string {
		va, err := getVA(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		return va.Annotations[volume.NodeIDAnnotation]
	}
	// detachLeavesNothing deletes the attachment and checks the volume is
	// published nowhere afterwards, and was never on two nodes at once.
	detachLeavesNothing := func(a *testAttacher, va *storagev1.VolumeAttachment, handle string) {
		GinkgoHelper()
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.Published(handle)).To(BeEmpty())
		Expect(a.driver.Publications()).NotTo(HaveKey(handle))
		Expect(a.driver.Overlaps()).To(BeEmpty(), "the single-node volume was never published to two node IDs at once")
	}

	It("unpublishes the old node ID first when the publish to it timed out", func() {
		a := startOwnAttacher(driverName, attacherOptions{})
		va, node, handle := create()
		oldID, newID := "old-"+node, "new-"+node
		// The driver publishes, but the answer comes too late.
		a.driver.InjectErrorAfter(fake.MethodPublish, handle, codes.DeadlineExceeded, -1)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "DeadlineExceeded")
		Expect(a.driver.Published(handle)).To(Equal([]string{oldID}))
		Expect(annotation(va.Name)).To(Equal(oldID))

		reregister(node, newID)
		Eventually(func() []string { return unpublishedFrom(a.driver, handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal([]string{oldID}))
		Eventually(func() string { return annotation(va.Name) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal(newID))
		a.driver.ClearFaults()
		expectAttached(ctx, va.Name)
		Expect(a.driver.Published(handle)).To(Equal([]string{newID}), "published to the new node ID only")
		Expect(unpublishedFrom(a.driver, handle)).To(Equal([]string{oldID}), "the old ID unpublished once")
		Expect(firstPublishAfterUnpublish(a.driver, handle, oldID, newID)).To(BeTrue(), "the old ID unpublished before any publish to the new one")

		detachLeavesNothing(a, va, handle)
		Expect(unpublishedFrom(a.driver, handle)).To(Equal([]string{oldID, newID}))
	})

	It("unpublishes the old node ID first when the status write of the publish to it was lost", func() {
		var loseStatus atomic.Bool
		loseStatus.Store(true)
		a := startOwnAttacher(driverName, attacherOptions{wrap: func(c client.WithWatch) client.WithWatch {
			return interceptor.NewClient(c, interceptor.Funcs{
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					data, err := p.Data(obj)
					if err == nil && loseStatus.Load() && strings.Contains(string(data), `"attached":true`) {
						return apierrors.NewServiceUnavailable("injected: the status write is lost")
					}
					return c.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
			})
		}})
		va, node, handle := create()
		oldID, newID := "old-"+node, "new-"+node
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "could not be marked attached")
		Expect(a.driver.Published(handle)).To(Equal([]string{oldID}))

		reregister(node, newID)
		Eventually(func() []string { return a.driver.Published(handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal([]string{newID}))
		loseStatus.Store(false)
		expectAttached(ctx, va.Name)
		Expect(annotation(va.Name)).To(Equal(newID))
		Expect(a.driver.Published(handle)).To(Equal([]string{newID}), "published to the new node ID only")
		Expect(unpublishedFrom(a.driver, handle)).To(Equal([]string{oldID}))

		detachLeavesNothing(a, va, handle)
	})

	It("reports a failed unpublish of the old node ID as an attach error and moves nothing", func() {
		a := startOwnAttacher(driverName, attacherOptions{})
		va, node, handle := create()
		oldID, newID := "old-"+node, "new-"+node
		a.driver.InjectErrorAfter(fake.MethodPublish, handle, codes.DeadlineExceeded, -1)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "DeadlineExceeded")
		Expect(a.driver.Published(handle)).To(Equal([]string{oldID}))

		a.driver.InjectErrorMessage(fake.MethodUnpublish, handle, codes.Internal, "backend refuses the detach", -1)
		reregister(node, newID)
		got := expectAttachError(ctx, va.Name, "backend refuses the detach")
		Expect(got.Status.AttachError.Message).To(ContainSubstring(oldID))
		Expect(got.Status.AttachError.ErrorCode).NotTo(BeNil())
		Expect(got.Status.AttachError.ErrorCode).To(HaveValue(BeEquivalentTo(codes.Internal)))
		Expect(got.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, oldID), "the annotation stays until the old ID is unpublished")
		Expect(a.driver.Published(handle)).To(Equal([]string{oldID}))
		Expect(publishedTo(a.driver, handle, newID)).To(BeZero(), "no publish to the new ID while the old one may be published")

		a.driver.ClearFaults()
		expectAttached(ctx, va.Name)
		Expect(a.driver.Published(handle)).To(Equal([]string{newID}))
		detachLeavesNothing(a, va, handle)
	})
})

// publishedTo counts the ControllerPublishVolume calls for handle to nodeID.
func publishedTo(d *fake.Driver, handle, nodeID string) int {
	n := 0
	for _, c := range d.Calls() {
		if c.Method == fake.MethodPublish && c.VolumeID == handle && c.NodeID == nodeID {
			n++
		}
	}
	return n
}

// firstPublishAfterUnpublish tells whether the driver saw an unpublish of
// handle from oldID before the first publish of it to newID.
func firstPublishAfterUnpublish(d *fake.Driver, handle, oldID, newID string) bool {
	unpublished := false
	for _, c := range d.Calls() {
		switch {
		case c.VolumeID != handle:
		case c.Method == fake.MethodUnpublish && c.NodeID == oldID && c.Code == codes.OK:
			unpublished = true
		case c.Method == fake.MethodPublish && c.NodeID == newID:
			return unpublished
		}
	}
	return false
}
