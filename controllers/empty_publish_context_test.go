package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// A driver may answer ControllerPublishVolume with an empty publish
// context: the attachment is attached without attachmentMetadata.
var _ = Describe("An empty publish context", func() {
	ctx := context.Background()
	objs := specObjects()

	It("attaches with an empty publish context and writes no attachmentMetadata", func() {
		const driverName = "emptyctx.csi.test"
		a := startOwnAttacher(driverName, attacherOptions{})
		node := uniqueName("emptyctx-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		pv := newPV(uniqueName("emptyctx-pv"), driverName, uniqueName("emptyctx-vol"))
		a.driver.SetPublishContext(pv.Spec.CSI.VolumeHandle, map[string]string{})
		objs.create(ctx, pv)
		va := newVA(uniqueName("emptyctx-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttached(ctx, va.Name)
		Expect(got.Status.AttachmentMetadata).To(BeEmpty())
		Expect(a.driver.Published(pv.Spec.CSI.VolumeHandle)).To(Equal([]string{"id-" + node}))
	})
})
