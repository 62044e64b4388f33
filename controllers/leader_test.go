package controllers_test

import (
	"context"
	"fmt"
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

		// A graceful stop releases the Lease: the standby, which watches it,
		// takes over at once, not after the lease duration.
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

	It("hands over within 2 s of the leader's SIGTERM with the default timings, ten times in a row", func() {
		const handoverDriver = "handover.csi.test"
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		driver := sharedDriver(handoverDriver)
		node := uniqueName("ho-node")
		objs.create(ctx, newCSINode(node, handoverDriver, "id-"+node))
		// The defaults of --leader-election-lease-duration, -renew-deadline
		// and -retry-period: client-go retries every 5-11 s.
		replica := func() *testAttacher {
			GinkgoHelper()
			a := startAttacher(fake.DefaultConfig(handoverDriver), attacherOptions{
				driver: driver, leaderElection: true, releaseOnCancel: true,
				leaseDuration: 15 * time.Second, renewDeadline: 10 * time.Second, retryPeriod: 5 * time.Second,
			})
			DeferCleanup(a.stop)
			return a
		}
		standbyReady := func(a *testAttacher) {
			GinkgoHelper()
			Eventually(a.lock.Waiting).WithTimeout(eventually).WithPolling(10*time.Millisecond).Should(BeTrue(), "the standby waits for the Lease")
		}

		leader := replica()
		Eventually(leader.elected).WithTimeout(eventually).Should(BeClosed())
		standby := replica()
		standbyReady(standby)
		var took []time.Duration
		for i := range 10 {
			sigterm := time.Now()
			stopped := make(chan struct{})
			go func(a *testAttacher) {
				defer GinkgoRecover()
				defer close(stopped)
				a.stop()
			}(leader)
			pv := newPV(uniqueName("ho-pv"), handoverDriver, uniqueName("ho-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("ho-va"), handoverDriver, node, pv.Name)
			objs.create(ctx, va)
			Eventually(func(g Gomega) {
				got, err := getVA(ctx, va.Name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Status.Attached).To(BeTrue())
			}).WithTimeout(2*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(),
				"hand-over %d: attached within 2 s of the leader's SIGTERM", i+1)
			took = append(took, time.Since(sigterm).Round(time.Millisecond))
			Eventually(stopped).WithTimeout(eventually).Should(BeClosed())
			Expect(isClosed(standby.elected)).To(BeTrue())
			leader, standby = standby, replica()
			standbyReady(standby)
		}
		AddReportEntry("attached after SIGTERM, 10 hand-overs", fmt.Sprint(took))
		GinkgoWriter.Printf("hand-over: attached after SIGTERM in %v\n", took)
	})
})
