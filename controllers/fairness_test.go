package controllers_test

import (
	"context"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

var _ = Describe("Fairness between attach and detach", func() {
	It("attaches a new volume in under a second while 300 slow detaches are queued", func() {
		const (
			driverName = "fair.csi.test"
			detaches   = 300
		)
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{workers: 10, timeout: 10 * time.Second})
		DeferCleanup(objs.cleanup, ctx)
		// Registered after the tracker's cleanup, so it runs first: let the
		// queued detaches finish quickly before the objects are removed.
		DeferCleanup(a.driver.SetLatency, fake.MethodUnpublish, "", time.Duration(0))

		node := uniqueName("fair-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < detaches; i++ {
			pv := newPV(uniqueName("fair-pv"), driverName, uniqueName("fair-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("fair-va"), driverName, node, pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}

		a.driver.SetLatency(fake.MethodUnpublish, "", 2*time.Second)
		for _, va := range vas {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		// All workers of the detach queue are now busy for a minute.
		Eventually(func() int { return a.driver.MaxConcurrent(fake.MethodUnpublish) }).
			WithTimeout(eventually).Should(BeNumerically(">=", 10))

		pv := newPV(uniqueName("fair-pv"), driverName, uniqueName("fair-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("fair-va"), driverName, node, pv.Name)
		start := time.Now()
		objs.create(ctx, va)
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Attached).To(BeTrue())
		}).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
		GinkgoWriter.Printf("attach during a detach storm took %v\n", time.Since(start))
		AddReportEntry("attach latency during 300 slow detaches", time.Since(start).String())
	})
})

var _ = Describe("Per-node limit of concurrent CSI calls", func() {
	It("never has more than --max-inflight-per-node calls in flight for one node", func() {
		const (
			driverName = "pernode.csi.test"
			volumes    = 12
		)
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{workers: 10, timeout: 10 * time.Second, maxInflightPerNode: 2})
		DeferCleanup(objs.cleanup, ctx)
		a.driver.SetLatency(fake.MethodPublish, "", 200*time.Millisecond)
		a.driver.SetLatency(fake.MethodUnpublish, "", 200*time.Millisecond)

		nodes := []string{uniqueName("pernode-a"), uniqueName("pernode-b")}
		for _, n := range nodes {
			objs.create(ctx, newCSINode(n, driverName, "id-"+n))
		}
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < volumes; i++ {
			pv := newPV(uniqueName("pernode-pv"), driverName, uniqueName("pernode-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("pernode-va"), driverName, nodes[i%2], pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
		for _, va := range vas {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		for _, va := range vas {
			expectGone(ctx, va)
		}
		perNode := maxOverlapByNode(a.driver.Calls())
		Expect(perNode).To(HaveLen(2))
		for node, peak := range perNode {
			Expect(peak).To(Equal(2), "node %s", node)
		}
		// With two nodes the driver saw more than two calls at once in total.
		Expect(a.driver.MaxConcurrent(fake.MethodPublish)).To(BeNumerically(">", 2))
	})
})

var _ = Describe("Adaptive bound of CSI calls in flight", func() {
	It("sends fewer calls at once while the driver answers ResourceExhausted to most calls on several nodes, and attaches everything", func() {
		const (
			driverName = "throttled.csi.test"
			volumes    = 16
			bound      = 8
		)
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second, maxInflight: bound})
		DeferCleanup(objs.cleanup, ctx)
		a.driver.SetLatency(fake.MethodPublish, "", 300*time.Millisecond)
		// A cloud API throttling the account: the first calls fail on every
		// node.
		a.driver.InjectError(fake.MethodPublish, "", codes.ResourceExhausted, 2*volumes)

		nodes := []string{uniqueName("throttled-a"), uniqueName("throttled-b"), uniqueName("throttled-c"), uniqueName("throttled-d")}
		for _, n := range nodes {
			objs.create(ctx, newCSINode(n, driverName, "id-"+n))
		}
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < volumes; i++ {
			pv := newPV(uniqueName("throttled-pv"), driverName, uniqueName("throttled-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("throttled-va"), driverName, nodes[i%len(nodes)], pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
		calls := a.driver.Calls()
		Expect(a.driver.MaxConcurrent(fake.MethodPublish)).To(BeNumerically("<=", bound), "never more than --max-inflight")

		// Once most calls of several nodes (10 first attempts, from at
		// least 3 nodes) have been refused, the bound is halved: the calls
		// that start after that, until the first success, never fill the
		// full bound again although every volume waits.
		var publishes []fake.Call
		for _, c := range calls {
			if c.Method == fake.MethodPublish {
				publishes = append(publishes, c)
			}
		}
		sort.Slice(publishes, func(i, j int) bool { return publishes[i].End.Before(publishes[j].End) })
		var throttledAt, firstSuccess time.Time
		refused := 0
		for _, c := range publishes {
			if c.Code == codes.ResourceExhausted && throttledAt.IsZero() {
				refused++
				if refused == 10 {
					throttledAt = c.End.Add(50 * time.Millisecond)
				}
			}
			if c.Code == codes.OK && firstSuccess.IsZero() {
				firstSuccess = c.End
			}
		}
		Expect(throttledAt).NotTo(BeZero())
		var during []fake.Call
		for _, c := range publishes {
			if c.Start.After(throttledAt) && c.Start.Before(firstSuccess) {
				during = append(during, c)
			}
		}
		Expect(during).NotTo(BeEmpty(), "calls were retried while the driver throttled")
		Expect(maxOverlap(during)).To(BeNumerically("<=", bound/2))
	})
})
