package controllers_test

import (
	"context"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// A cluster moving from the reference external-attacher: its objects carry
// the same finalizer and node-ID annotation, so they are ours to detach.
var _ = Describe("Taking over from the reference attacher", func() {
	It("leaves a volume it attached alone and detaches it on deletion", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		a := attachers[fullDriver]
		finalizer := volume.FinalizerName(fullDriver)

		node := uniqueName("migr-node")
		nodeID := "id-" + node
		pv := newPV(uniqueName("migr-pv"), fullDriver, uniqueName("migr-vol"))
		pv.Finalizers = []string{finalizer}
		objs.create(ctx, pv)
		handle := pv.Spec.CSI.VolumeHandle

		// What the reference did: publish, then write finalizer, annotation
		// and status.
		_, err := a.client.Publish(ctx, csi.PublishRequest{
			VolumeID: handle, NodeID: nodeID,
			Capability: &csipb.VolumeCapability{
				AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
				AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			},
		})
		Expect(err).NotTo(HaveOccurred())
		va := newVA(uniqueName("migr-va"), fullDriver, node, pv.Name)
		va.Finalizers = []string{finalizer}
		va.Annotations = map[string]string{volume.NodeIDAnnotation: nodeID}
		// The CSINode appears only once the status says attached, so the
		// window between creating the object and writing its status (which
		// the reference never had) cannot lead to a publish of ours.
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "CSINode")
		status := `{"status":{"attached":true,"attachError":null,"attachmentMetadata":{"devicePath":"/dev/fake/` + handle + `"}}}`
		Expect(k8sClient.Status().Patch(ctx, va, client.RawPatch(types.MergePatchType, []byte(status)))).To(Succeed())
		objs.create(ctx, newCSINode(node, fullDriver, nodeID))

		Consistently(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Attached).To(BeTrue())
			g.Expect(got.Status.AttachError).To(BeNil())
			g.Expect(got.Finalizers).To(Equal([]string{finalizer}))
		}).WithTimeout(time.Second).WithPolling(pollInterval).Should(Succeed())
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1), "no second publish of an attached volume")

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.Published(handle)).To(BeEmpty())
		calls := callsFor(a.driver, fake.MethodUnpublish, handle)
		Expect(calls).To(HaveLen(1))
		Expect(calls[0].NodeID).To(Equal(nodeID))

		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		expectGone(ctx, pv)
	})
})
