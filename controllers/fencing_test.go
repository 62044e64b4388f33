package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/leader"
)

var _ = Describe("Fencing after an unclean takeover", func() {
	const driverName = "fence.csi.test"

	It("holds the attachments pending at the takeover until the old leader's calls have reached their bound, and serves new ones at once", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		node := uniqueName("fe-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		// The bound of a call (--timeout), well beyond the lease so the
		// hold shows.
		const timeout = 6 * time.Second
		old := startAttacher(fake.DefaultConfig(driverName), attacherOptions{leaderElection: true, timeout: timeout})
		Eventually(old.elected).WithTimeout(eventually).Should(BeClosed())
		next := startAttacher(fake.DefaultConfig(driverName), attacherOptions{leaderElection: true, timeout: timeout})
		DeferCleanup(next.stop)
		Eventually(next.lock.Waiting).WithTimeout(eventually).Should(BeTrue(), "the standby waits for the Lease")

		// An attachment the old leader is still working on when it dies:
		// its backend answers Unavailable, which may still be in progress.
		pending := newPV(uniqueName("fe-pv"), driverName, uniqueName("fe-vol"))
		old.driver.InjectError(fake.MethodPublish, pending.Spec.CSI.VolumeHandle, codes.Unavailable, -1)
		objs.create(ctx, pending)
		pendingVA := newVA(uniqueName("fe-va"), driverName, node, pending.Name)
		objs.create(ctx, pendingVA)
		Eventually(func() int { return old.driver.CallCount(fake.MethodPublish, pending.Spec.CSI.VolumeHandle) }).
			WithTimeout(eventually).Should(BeNumerically(">=", 1))

		// The old leader dies without releasing its Lease.
		old.stop()
		Eventually(next.elected).WithTimeout(testLeaseDuration + 5*time.Second).Should(BeClosed())
		took := time.Now()

		// An attachment that appears after the takeover is served at once.
		fresh := newPV(uniqueName("fe-pv"), driverName, uniqueName("fe-vol"))
		objs.create(ctx, fresh)
		freshVA := newVA(uniqueName("fe-va"), driverName, node, fresh.Name)
		objs.create(ctx, freshVA)
		expectAttached(ctx, freshVA.Name)
		Expect(time.Since(took)).To(BeNumerically("<", 2*time.Second), "not held")

		// The pending one waits until the old leader's calls have reached
		// their bound: FenceDelay plus --timeout after the last renewal the
		// new leader saw, which was a lease duration before it took over.
		hold := leader.FenceDelay(testRetryPeriod) + timeout - testLeaseDuration
		Consistently(func() int { return next.driver.CallCount(fake.MethodPublish, pending.Spec.CSI.VolumeHandle) }).
			WithTimeout(hold-time.Since(took)-500*time.Millisecond).Should(BeZero(), "held")
		expectAttached(ctx, pendingVA.Name)
		held := time.Since(took)
		Expect(held).To(BeNumerically(">=", hold-500*time.Millisecond))
		AddReportEntry("hold of an attachment pending at an unclean takeover", held.String())
	})
})
