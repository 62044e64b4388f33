package controllers_test

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

var _ = Describe("A driver error longer than the API allows in status", func() {
	// The API server refuses status.attachError.message and
	// detachError.message over 1024 bytes, and with them the whole status
	// patch.
	const (
		driverName = "longerror.csi.test"
		apiLimit   = 1024
	)

	It("is saved truncated with its gRPC code in attachError and detachError, in a Warning Event, and in full in the log", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		logger, logs := bufferLogger()
		a := startOwnAttacher(driverName, attacherOptions{logger: logger})
		DeferCleanup(a.driver.ClearFaults)

		node := uniqueName("long-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		handle := uniqueName("long-vol")
		// 1100 bytes from the driver, with a recognisable start and end.
		start, end := "backend rejected the request: ", " END-OF-DRIVER-MESSAGE"
		message := start + strings.Repeat("x", 1100-len(start)-len(end)) + end
		Expect(message).To(HaveLen(1100))
		a.driver.InjectErrorMessage(fake.MethodPublish, handle, codes.Internal, message, 0)
		pv := newPV(uniqueName("long-pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("long-va"), driverName, node, pv.Name)
		objs.create(ctx, va)

		got := expectAttachError(ctx, va.Name, start)
		msg := got.Status.AttachError.Message
		Expect(len(msg)).To(BeNumerically("<=", apiLimit))
		Expect(msg).To(HavePrefix(`ControllerPublishVolume of volume "` + handle + `"`))
		Expect(msg).To(ContainSubstring("code = Internal"))
		Expect(msg).To(ContainSubstring("truncated"))
		Expect(msg).NotTo(ContainSubstring(end))
		Expect(got.Status.AttachError.ErrorCode).To(Equal(ptr.To(int32(codes.Internal))))
		expectWarningEvent(ctx, va.Name, "AttachFailed", "[Internal]")
		expectWarningEvent(ctx, va.Name, "AttachFailed", start)
		Eventually(logs.String).WithTimeout(eventually).WithPolling(pollInterval).Should(ContainSubstring(end),
			"the log keeps the whole message")
		GinkgoWriter.Printf("attachError (%d bytes): %s\n", len(msg), msg)

		// The same for detach.
		a.driver.ClearFaults()
		expectAttached(ctx, va.Name)
		a.driver.InjectErrorMessage(fake.MethodUnpublish, handle, codes.Internal, message, 0)
		Expect(k8sClient.Delete(ctx, got)).To(Succeed())
		Eventually(func(g Gomega) {
			cur, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cur.Status.DetachError).NotTo(BeNil())
			g.Expect(cur.Status.DetachError.Message).To(HavePrefix(`ControllerUnpublishVolume of volume "` + handle + `"`))
			g.Expect(cur.Status.DetachError.Message).To(ContainSubstring("code = Internal"))
			g.Expect(cur.Status.DetachError.Message).To(ContainSubstring(start))
			g.Expect(len(cur.Status.DetachError.Message)).To(BeNumerically("<=", apiLimit))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		expectWarningEvent(ctx, va.Name, "DetachFailed", start)
		Expect(strings.Count(logs.String(), end)).To(BeNumerically(">=", 2), "attach and detach errors in full in the log")

		a.driver.ClearFaults()
		expectGone(ctx, got)
		Expect(a.driver.Published(handle)).To(BeEmpty())
		AddReportEntry("long driver error", fmt.Sprintf("1100-byte driver error saved as a %d-byte attachError", len(msg)))
	})
})
