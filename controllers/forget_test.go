package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/controllers/drift"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// The reconcilers keep a few maps keyed by object (the freshness tracker,
// the ListVolumes pass's force-sync flags, start times, locks). In a
// long-running attacher they must follow the live objects, not every object
// ever seen.
var _ = Describe("Per-object memory", func() {
	const driverName = "forget.csi.test"
	objs := specObjects()

	It("forgets every deleted object, and a new object never inherits a deleted one's force-sync flag", func() {
		ctx := context.Background()
		// A long first retry keeps the failed attach below from being retried
		// (and its freshness entry dropped by the retry) before it is
		// deleted; ListVolumes passes every 500 ms find the drift.
		a := startAttacher(fake.DefaultConfig(driverName), attacherOptions{
			reconcileSync: 500 * time.Millisecond, retryStart: 10 * time.Second, retryMax: 10 * time.Second, timeout: 5 * time.Second,
		})
		DeferCleanup(a.stop)
		node := uniqueName("fg-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		By("attaching a volume")
		pv := newPV(uniqueName("fg-pv"), driverName, uniqueName("fg-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("fg-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)

		By("failing an attach before any finalizer (no CSINode), then deleting it")
		failedPV := newPV(uniqueName("fg-pv"), driverName, uniqueName("fg-vol"))
		objs.create(ctx, failedPV)
		failed := newVA(uniqueName("fg-va"), driverName, uniqueName("fg-nonode"), failedPV.Name)
		objs.create(ctx, failed)
		expectAttachError(ctx, failed.Name, "not found")
		Expect(k8sClient.Delete(ctx, failed)).To(Succeed())
		expectGone(ctx, failed)

		By("deleting the attached VolumeAttachment while a ListVolumes pass that still lists it is in flight")
		listed := a.driver.CallCount(fake.MethodListVolumes, "")
		a.driver.SetLatency(fake.MethodListVolumes, "", 2*time.Second)
		Eventually(func() int { return a.driver.CallCount(fake.MethodListVolumes, "") }).
			WithTimeout(eventually).WithPolling(10 * time.Millisecond).Should(BeNumerically(">", listed))
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		// The pass ends and finds the deleted (still listed) attachment no
		// longer published: it flags it for a forced sync.
		expectWarningEvent(ctx, va.Name, drift.ReasonDetachedOutOfBand, "no longer published")
		a.driver.SetLatency(fake.MethodListVolumes, "", 0)

		By("creating a VolumeAttachment of the same name that is never published, and deleting it")
		// Its attach fails before any finalizer (ReadOnlyMany with
		// ReadWriteOnce has no CSI access mode); another finalizer keeps it
		// after deletion, so the detach side sees it without ours. A flag
		// left by its namesake would make that detach unpublish a volume
		// that was never published.
		badPV := newPV(uniqueName("fg-pv"), driverName, uniqueName("fg-vol"))
		badPV.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteOnce}
		objs.create(ctx, badPV)
		again := newVA(va.Name, driverName, node, badPV.Name)
		again.Finalizers = []string{"test.csi/hold"}
		objs.create(ctx, again)
		expectAttachError(ctx, again.Name, "ReadOnlyMany")
		Expect(k8sClient.Delete(ctx, again)).To(Succeed())
		Consistently(func() int { return a.driver.CallCount(fake.MethodUnpublish, badPV.Spec.CSI.VolumeHandle) }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(BeZero(), "no ControllerUnpublish for a volume never published")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(again), again)).To(Succeed())
		again.Finalizers = nil
		Expect(k8sClient.Update(ctx, again)).To(Succeed())
		expectGone(ctx, again)

		By("releasing and deleting the PersistentVolumes")
		for _, p := range []*corev1.PersistentVolume{pv, failedPV, badPV} {
			Expect(k8sClient.Delete(ctx, p)).To(Succeed())
			expectGone(ctx, p)
		}

		Eventually(a.attacher.TrackedObjects).WithTimeout(eventually).WithPolling(pollInterval).Should(Equal(map[string]int{
			controllers.TrackedFreshness:  0,
			controllers.TrackedForceSync:  0,
			controllers.TrackedStartTimes: 0,
			controllers.TrackedLocks:      0,
			controllers.TrackedNodeSlots:  0,
		}), "every per-object map is empty once the objects are gone")
	})
})
