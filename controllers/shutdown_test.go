package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	leaderpkg "github.com/csi-attacher/csi-attacher/internal/leader"
)

var _ = Describe("Shutdown with a CSI call in flight", func() {
	const driverName = "shutdown.csi.test"
	objs := specObjects()

	It("keeps the Lease until the call returns, starts no call after SIGTERM, and leaves nothing published", func() {
		const (
			publishTakes = 45 * time.Second
			// The CSI timeout lets the slow publish succeed.
			timeout = publishTakes + 5*time.Second
		)
		ctx := context.Background()
		driver := sharedDriver(driverName)
		leader := startAttacher(fake.DefaultConfig(driverName), attacherOptions{
			driver: driver, timeout: timeout, leaderElection: true, releaseOnCancel: true,
		})
		DeferCleanup(leader.stop)
		Eventually(leader.elected).WithTimeout(eventually).Should(BeClosed())
		standby := startAttacher(fake.DefaultConfig(driverName), attacherOptions{
			driver: driver, timeout: timeout, leaderElection: true, releaseOnCancel: true,
		})
		DeferCleanup(standby.stop)
		standbyElected := make(chan time.Time, 1)
		go func() {
			<-standby.elected
			standbyElected <- time.Now()
		}()

		node := uniqueName("sd-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		pv := newPV(uniqueName("sd-pv"), driverName, uniqueName("sd-vol"))
		handle := pv.Spec.CSI.VolumeHandle
		driver.SetLatency(fake.MethodPublish, handle, publishTakes)
		objs.create(ctx, pv)
		va := newVA(uniqueName("sd-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		Eventually(func() int { return driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(eventually).WithPolling(10 * time.Millisecond).Should(Equal(1))
		publishStarted := time.Now()

		By("deleting the VolumeAttachment while ControllerPublish runs: a detach worker waits for the lock")
		time.Sleep(3 * time.Second)
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())

		By("stopping the leader 5 s into the publish")
		time.Sleep(time.Until(publishStarted.Add(5 * time.Second)))
		sigterm := time.Now()
		stopped := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(stopped)
			leader.stop()
		}()

		By("waiting for the publish to return and the standby to take over")
		var publishEnded time.Time
		Eventually(func() time.Time {
			for _, c := range driver.Calls() {
				if c.Method == fake.MethodPublish && c.VolumeID == handle {
					publishEnded = c.End
				}
			}
			return publishEnded
		}).WithTimeout(timeout).WithPolling(pollInterval).ShouldNot(BeZero(), "the publish returns")
		Eventually(stopped).WithTimeout(eventually).Should(BeClosed())
		var elected time.Time
		Eventually(standbyElected).WithTimeout(eventually).Should(Receive(&elected))
		// The moment the new leader took the Lease is the one its Lease
		// records: its workers can start a call before this goroutine
		// notices the election, so the notice would count that call as
		// the stopping leader's.
		lease := &coordinationv1.Lease{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaderpkg.LeaseName(driverName)}, lease)).To(Succeed())
		Expect(lease.Spec.AcquireTime).NotTo(BeNil())
		takeover := lease.Spec.AcquireTime.Time
		Expect(takeover).To(BeTemporally("<=", elected))
		Expect(takeover).To(BeTemporally(">", publishEnded), "the Lease is kept until the in-flight publish has returned")
		for _, c := range driver.Calls() {
			if c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish {
				Expect(c.Start.After(sigterm) && c.Start.Before(takeover)).To(BeFalse(),
					"%s of %s started %v after SIGTERM by the stopping leader", c.Method, c.VolumeID, c.Start.Sub(sigterm))
			}
		}

		By("the new leader detaches: nothing published, no finalizer left")
		expectGone(ctx, va)
		Consistently(func() []string { return driver.Published(handle) }).
			WithTimeout(time.Second).WithPolling(pollInterval).Should(BeEmpty())
		Expect(driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1), "one ControllerUnpublish, by the new leader")
		AddReportEntry("takeover after the in-flight publish returned", takeover.Sub(publishEnded).String())
	})
})
