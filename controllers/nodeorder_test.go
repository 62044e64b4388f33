package controllers_test

import (
	"context"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// nodeVolumes creates n attachments of driver on node, each with its own
// PV, and returns them with their volume handles.
func nodeVolumes(ctx context.Context, objs *tracker, driver, node string, n int) ([]*storagev1.VolumeAttachment, []string) {
	GinkgoHelper()
	var vas []*storagev1.VolumeAttachment
	var handles []string
	for i := 0; i < n; i++ {
		handle := uniqueName("order-vol")
		pv := newPV(uniqueName("order-pv"), driver, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("order-va"), driver, node, pv.Name)
		objs.create(ctx, va)
		vas = append(vas, va)
		handles = append(handles, handle)
	}
	return vas, handles
}

// firstCalls returns, for each volume, the start of the first call of
// method the driver received for it.
func firstCalls(calls []fake.Call, method string, volumes []string) []time.Time {
	GinkgoHelper()
	var starts []time.Time
	for _, v := range volumes {
		i := slices.IndexFunc(calls, func(c fake.Call) bool { return c.Method == method && c.VolumeID == v })
		Expect(i).To(BeNumerically(">=", 0), "no %s for volume %s", method, v)
		starts = append(starts, calls[i].Start)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	return starts
}

// fillNode sets a long publish latency for n new attachments on node and
// waits until all n calls are in flight: the node's slots are taken.
func fillNode(ctx context.Context, objs *tracker, a *testAttacher, driver, node string, n int, latency time.Duration) {
	GinkgoHelper()
	handles := make([]string, n)
	for i := range handles {
		handles[i] = uniqueName("order-blocker")
		a.driver.SetLatency(fake.MethodPublish, handles[i], latency)
	}
	for _, h := range handles {
		pv := newPV(uniqueName("order-pv"), driver, h)
		objs.create(ctx, pv)
		objs.create(ctx, newVA(uniqueName("order-blocker-va"), driver, node, pv.Name))
	}
	Eventually(func() int {
		inFlight := 0
		for _, c := range a.driver.Calls() {
			if c.Method == fake.MethodPublish && c.End.IsZero() && slices.Contains(handles, c.VolumeID) {
				inFlight++
			}
		}
		return inFlight
	}).WithTimeout(eventually).WithPolling(10*time.Millisecond).Should(Equal(n), "the node's slots are taken")
}

var _ = Describe("Per-node order of CSI calls", func() {
	objs := specObjects()

	It("sends a node's waiting detaches before its waiting attaches, under --max-inflight-per-node", func() {
		const (
			driverName = "order.csi.test"
			limit      = 2
			each       = 4
		)
		ctx := context.Background()
		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second, maxInflightPerNode: limit})
		node := uniqueName("order-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		olds, oldHandles := nodeVolumes(ctx, objs, driverName, node, each)
		for _, va := range olds {
			expectAttached(ctx, va.Name)
		}
		fillNode(ctx, objs, a, driverName, node, limit, 3*time.Second)

		// The attaches are refused first, so a first-come order would
		// serve them first.
		news, newHandles := nodeVolumes(ctx, objs, driverName, node, each)
		for _, va := range olds {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		for _, va := range news {
			expectAttached(ctx, va.Name)
		}
		for _, va := range olds {
			expectGone(ctx, va)
		}
		calls := a.driver.Calls()
		unpublished := firstCalls(calls, fake.MethodUnpublish, oldHandles)
		published := firstCalls(calls, fake.MethodPublish, newHandles)
		Expect(unpublished[len(unpublished)-1]).To(BeTemporally("<", published[0]),
			"every ControllerUnpublishVolume of the node starts before its first waiting ControllerPublishVolume")
		Expect(maxOverlapByNode(calls)[("id-" + node)]).To(BeNumerically("<=", limit))
	})

	It("releases a node's waiting attaches together once its detaches are done, under --max-inflight-per-node", func() {
		const (
			driverName = "batch.csi.test"
			limit      = 4
		)
		ctx := context.Background()
		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second, maxInflightPerNode: limit})
		node := uniqueName("batch-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		olds, oldHandles := nodeVolumes(ctx, objs, driverName, node, limit)
		for _, va := range olds {
			expectAttached(ctx, va.Name)
		}
		// The detaches end one by one, 500 ms apart: a slot handed to the
		// next waiter at each end would spread the attaches over 1.5 s.
		for i, h := range oldHandles {
			a.driver.SetLatency(fake.MethodUnpublish, h, time.Duration(800+500*i)*time.Millisecond)
		}
		for _, va := range olds {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		Eventually(func() int { return a.driver.MaxConcurrent(fake.MethodUnpublish) }).
			WithTimeout(eventually).WithPolling(10 * time.Millisecond).Should(Equal(limit))
		news, newHandles := nodeVolumes(ctx, objs, driverName, node, limit)
		for _, va := range news {
			expectAttached(ctx, va.Name)
		}
		for _, va := range olds {
			expectGone(ctx, va)
		}
		calls := a.driver.Calls()
		unpublishEnds := time.Time{}
		for _, c := range calls {
			if c.Method == fake.MethodUnpublish && c.End.After(unpublishEnds) {
				unpublishEnds = c.End
			}
		}
		published := firstCalls(calls, fake.MethodPublish, newHandles)
		spread := published[len(published)-1].Sub(published[0])
		GinkgoWriter.Printf("%d attaches of one node reached the driver within %v\n", limit, spread)
		AddReportEntry("spread of one node's batch of attaches", spread.String())
		Expect(published[0]).To(BeTemporally(">=", unpublishEnds), "no attach of the node starts while its detaches run")
		Expect(spread).To(BeNumerically("<", 400*time.Millisecond), "the node's attaches are released together")
	})

	It("does not serialise one node's attaches without --max-inflight-per-node", func() {
		const (
			driverName = "nolimit.csi.test"
			volumes    = 8
		)
		ctx := context.Background()
		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second})
		a.driver.SetLatency(fake.MethodPublish, "", time.Second)
		node := uniqueName("nolimit-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		vas, _ := nodeVolumes(ctx, objs, driverName, node, volumes)
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
		Expect(a.driver.MaxConcurrent(fake.MethodPublish)).To(Equal(volumes), "all of the node's attaches are in flight at once")
	})
})
