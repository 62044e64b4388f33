package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

var _ = Describe("Leader election", func() {
	const driverName = "leader.csi.test"

	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	// attachOne creates a VA and returns the PV's volume handle once it is
	// attached.
	attachOne := func(ctx context.Context, objs *tracker, node string) string {
		GinkgoHelper()
		pv := newPV(uniqueName("le-pv"), driverName, uniqueName("le-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("le-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		return pv.Spec.CSI.VolumeHandle
	}

	It("lets only the leader call the driver and hands over on stop and on loss", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		node := uniqueName("le-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		first := startAttacher(fake.DefaultConfig(driverName), attacherOptions{leaderElection: true, releaseOnCancel: true})
		Eventually(first.elected).WithTimeout(eventually).Should(BeClosed())
		standby := startAttacher(fake.DefaultConfig(driverName), attacherOptions{leaderElection: true, releaseOnCancel: false})
		DeferCleanup(standby.stop)

		handle := attachOne(ctx, objs, node)
		Expect(first.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1))
		Expect(standby.driver.CallCount(fake.MethodPublish, "")).To(BeZero(), "the standby never calls its driver")
		Expect(isClosed(standby.elected)).To(BeFalse())

		// A graceful stop releases the Lease: the standby takes over at its
		// next retry, not after the lease duration.
		start := time.Now()
		first.stop()
		Eventually(standby.elected).WithTimeout(testLeaseDuration + 5*time.Second).Should(BeClosed())
		graceful := time.Since(start)
		Expect(graceful).To(BeNumerically("<", testLeaseDuration), "released, not expired")
		handle = attachOne(ctx, objs, node)
		Expect(standby.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1))

		// A leader that dies without releasing: the next one waits for the
		// Lease to expire.
		third := startAttacher(fake.DefaultConfig(driverName), attacherOptions{leaderElection: true, releaseOnCancel: true})
		DeferCleanup(third.stop)
		Consistently(third.elected).WithTimeout(500 * time.Millisecond).ShouldNot(BeClosed())
		start = time.Now()
		standby.cancel() // releaseOnCancel is false: the Lease is left to expire
		Eventually(third.elected).WithTimeout(testLeaseDuration + 5*time.Second).Should(BeClosed())
		lost := time.Since(start)
		Expect(lost).To(BeNumerically("<=", testLeaseDuration+2*time.Second), "within the lease duration")
		handle = attachOne(ctx, objs, node)
		Expect(third.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1))

		AddReportEntry("takeover after a graceful stop", graceful.String())
		AddReportEntry("takeover after a lost leader (lease "+testLeaseDuration.String()+")", lost.String())
		GinkgoWriter.Printf("takeover: graceful %v, lost leader %v (lease %v)\n", graceful, lost, testLeaseDuration)
	})
})
