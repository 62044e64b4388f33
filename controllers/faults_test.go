package controllers_test

import (
	"context"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

var _ = Describe("Driver down and back", func() {
	It("keeps running, reports not ready, and converges once the driver returns", func() {
		const driverName = "outage.csi.test"
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{})
		DeferCleanup(objs.cleanup, ctx)
		monitorCtx, stopMonitor := context.WithCancel(ctx)
		DeferCleanup(stopMonitor)
		go func() {
			defer GinkgoRecover()
			_ = a.client.HealthMonitor(100 * time.Millisecond).Start(monitorCtx)
		}()
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).WithTimeout(eventually).Should(Succeed())

		node := uniqueName("outage-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		a.driver.Stop()
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).
			WithTimeout(eventually).WithPolling(pollInterval).ShouldNot(Succeed(), "/readyz turns false while the driver is gone")

		pv := newPV(uniqueName("outage-pv"), driverName, uniqueName("outage-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("outage-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "Unavailable")
		Expect(*got.Status.AttachError.ErrorCode).To(BeEquivalentTo(codes.Unavailable))
		Expect(got.Status.Attached).To(BeFalse())

		Expect(a.driver.Start(filepath.Join(a.dir, "csi.sock"))).To(Succeed())
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed(), "/readyz turns true again")
		expectAttached(ctx, va.Name)
		Expect(a.driver.Published(pv.Spec.CSI.VolumeHandle)).To(Equal([]string{"id-" + node}))
		Expect(a.driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(Equal(1), "calls while the driver was down never reached it")
	})
})
