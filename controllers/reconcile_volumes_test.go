package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/controllers/drift"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// reconcileSync is short so several passes fit in one test.
const reconcileSync = 300 * time.Millisecond

// driftMetrics returns metrics for driver registered with a registry of
// their own, and a function that reads csi_attacher_volume_drift_total of
// one kind from it.
func driftMetrics(driver string) (*metrics.Metrics, func(kind string) float64) {
	GinkgoHelper()
	m := metrics.New(driver)
	reg := prometheus.NewRegistry()
	Expect(m.Register(reg)).To(Succeed())
	return m, func(kind string) float64 {
		GinkgoHelper()
		mfs, err := reg.Gather()
		Expect(err).NotTo(HaveOccurred())
		families := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			families[mf.GetName()] = mf
		}
		return counterWith(families, metrics.VolumeDriftTotal, metrics.LabelKind, kind)
	}
}

var _ = Describe("ListVolumes reconciliation", func() {
	ctx := context.Background()
	objs := specObjects()

	// attachOne creates a PV and a VA on a fresh node and waits until the
	// volume is attached; it returns the VA name, handle and node ID.
	attachOne := func(a *testAttacher, driverName string) (vaName, handle, nodeID string) {
		GinkgoHelper()
		node := uniqueName("lv-node")
		nodeID = "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
		handle = uniqueName("lv-vol")
		pv := newPV(uniqueName("lv-pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("lv-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}))
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1))
		return va.Name, handle, nodeID
	}

	It("publishes again a volume detached behind our back, with a Warning Event", func() {
		const driverName = "lv-drift.csi.test"
		m, drifted := driftMetrics(driverName)
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync, metrics: m})
		vaName, handle, nodeID := attachOne(a, driverName)
		Expect(drifted(metrics.DriftDetachedOutOfBand)).To(BeZero())

		a.driver.DetachBehindBack(handle, nodeID)
		Expect(a.driver.Published(handle)).To(BeEmpty())
		Eventually(func() []string { return a.driver.Published(handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal([]string{nodeID}))
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(2))
		Eventually(func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace("default"))).To(Succeed())
			var reasons []string
			for _, e := range list.Items {
				if e.Regarding.Name == vaName && e.Type == "Warning" {
					reasons = append(reasons, e.Reason)
				}
			}
			g.Expect(reasons).To(ContainElement(drift.ReasonDetachedOutOfBand))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		va := expectAttached(ctx, vaName)
		Expect(va.Status.Attached).To(BeTrue())
		// Repaired once: later passes see it published and leave it alone.
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(4 * reconcileSync).WithPolling(pollInterval).Should(Equal(2))
		Expect(drifted(metrics.DriftDetachedOutOfBand)).To(Equal(1.0), "one drift, counted once")
		Expect(drifted(metrics.DriftStillPublished)).To(BeZero())
	})

	It("unpublishes a volume still published to the node of a VA being deleted without our finalizer", func() {
		const (
			driverName = "lv-deleting.csi.test"
			keep       = "test.csi/keep"
		)
		m, drifted := driftMetrics(driverName)
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync, metrics: m})
		node := uniqueName("lv-node")
		nodeID := "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
		handle := uniqueName("lv-vol")
		pv := newPV(uniqueName("lv-pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("lv-va"), driverName, node, pv.Name)
		// Another controller's finalizer keeps the object after our detach.
		va.Finalizers = []string{keep}
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(Equal([]string{keep}))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		Expect(a.driver.Published(handle)).To(BeEmpty())
		Expect(a.driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1))

		// Published again outside the attacher, e.g. by a stale backend job.
		capability, err := volume.Capability(&pv.Spec, defaultFSType, true)
		Expect(err).NotTo(HaveOccurred())
		_, err = a.client.Publish(ctx, csi.PublishRequest{VolumeID: handle, NodeID: nodeID, Capability: capability})
		Expect(err).NotTo(HaveOccurred())
		Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}))

		Eventually(func() []string { return a.driver.Published(handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(BeEmpty())
		Expect(a.driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(2))
		got, err := getVA(ctx, va.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).To(Equal([]string{keep}), "no finalizer of ours comes back")
		Expect(drifted(metrics.DriftStillPublished)).To(Equal(1.0))
		Expect(drifted(metrics.DriftDetachedOutOfBand)).To(BeZero())
	})

	It("does not publish a healthy volume again", func() {
		const driverName = "lv-healthy.csi.test"
		m, drifted := driftMetrics(driverName)
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync, metrics: m})
		_, handle, _ := attachOne(a, driverName)

		Eventually(func() int { return a.driver.CallCount(fake.MethodListVolumes, "") }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(BeNumerically(">=", 2), "passes run")
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(Equal(1))
		Expect(a.driver.CallCount(fake.MethodListVolumes, "")).To(BeNumerically(">=", 4), "passes ran during the wait")
		Expect(drifted(metrics.DriftDetachedOutOfBand)).To(BeZero())
		Expect(drifted(metrics.DriftStillPublished)).To(BeZero())
	})

	It("survives a failing ListVolumes and repairs the drift once it works again", func() {
		const driverName = "lv-failing.csi.test"
		a := startOwnAttacher(driverName, attacherOptions{reconcileSync: reconcileSync})
		_, handle, nodeID := attachOne(a, driverName)

		a.driver.InjectError(fake.MethodListVolumes, "", codes.Unavailable, 0)
		DeferCleanup(a.driver.ClearFaults)
		a.driver.DetachBehindBack(handle, nodeID)
		before := a.driver.CallCount(fake.MethodListVolumes, "")
		Eventually(func() int { return a.driver.CallCount(fake.MethodListVolumes, "") }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(BeNumerically(">=", before+2), "failing passes are retried")
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(Equal(1), "no decision without the driver's view")

		a.driver.ClearFaults()
		Eventually(func() []string { return a.driver.Published(handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal([]string{nodeID}))
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(2))
	})

	It("does not run for a driver without the LIST_VOLUMES capabilities", func() {
		const driverName = "lv-nocap.csi.test"
		dc := fake.DefaultConfig(driverName)
		dc.ListVolumes = false
		dc.ListVolumesPublishedNodes = false
		a := startAttacher(dc, attacherOptions{reconcileSync: reconcileSync})
		DeferCleanup(a.stop)
		_, handle, nodeID := attachOne(a, driverName)

		a.driver.DetachBehindBack(handle, nodeID)
		Consistently(func() int { return a.driver.CallCount(fake.MethodListVolumes, "") }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(BeZero())
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1))
	})
})
