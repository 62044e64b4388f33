package controllers_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// attacherGoroutines counts the goroutines whose stack runs through the
// attacher's own VolumeAttachment code or its forced-sync queue. A standby
// runs no controller, so none of them belongs to it.
func attacherGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "csi-attacher/controllers/volumeattachment.") ||
			strings.Contains(g, "csi-attacher/internal/forcesync.") {
			count++
		}
	}
	return count
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var _ = Describe("A standby replica", func() {
	const (
		driverName = "standby.csi.test"
		failed     = 200
		recoveries = 20
		// noise is how many goroutines of the suite's own process (HTTP/2
		// connections, informers of other specs winding down) may come and
		// go meanwhile; runs have shown up to 4. A leak of one per recovery
		// is well above it.
		noise = recoveries / 2
	)
	ctx := context.Background()
	objs := specObjects()

	It("queues and keeps nothing when its driver recovers, however often", func() {
		// Another replica holds the Lease for an hour: this one stays a
		// standby for the whole test.
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: leader.LeaseName(driverName), Namespace: "default"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To("the-leader"),
				LeaseDurationSeconds: ptr.To(int32(3600)),
				AcquireTime:          &metav1.MicroTime{Time: time.Now()},
				RenewTime:            &metav1.MicroTime{Time: time.Now()},
			},
		}
		objs.create(ctx, lease)
		// Its own logs are dropped: the suite's log buffer grows with every
		// line and would blur the heap figures.
		quiet := logr.Discard()
		a := startOwnAttacher(driverName, attacherOptions{leaderElection: true, logger: &quiet})

		// Attachments whose last attempt failed, as the leader left them.
		node := uniqueName("sb-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		for range failed {
			va := newVA(uniqueName("sb-va"), driverName, node, uniqueName("sb-pv"))
			objs.create(ctx, va)
			base := va.DeepCopy()
			va.Status.AttachError = &storagev1.VolumeError{Time: metav1.Now(), Message: "rpc error: code = Unavailable desc = driver gone"}
			Expect(k8sClient.Status().Patch(ctx, va, client.MergeFrom(base))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			var list storagev1.VolumeAttachmentList
			g.Expect(a.cache.List(ctx, &list)).To(Succeed())
			n := 0
			for _, va := range list.Items {
				if va.Spec.Attacher == driverName && va.Status.AttachError != nil {
					n++
				}
			}
			g.Expect(n).To(Equal(failed))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed(), "the standby's cache holds every failed attachment")

		// The driver-back hook wired as main.go does, on a monitor that
		// runs on every replica.
		var recovered atomic.Int32
		monitorCtx, stopMonitor := context.WithCancel(ctx)
		DeferCleanup(stopMonitor)
		monitor := a.client.HealthMonitor(20 * time.Millisecond)
		monitor.OnRecovered(func(ctx context.Context) {
			a.attacher.RetryFailed(ctx)
			recovered.Add(1)
		})
		go func() {
			defer GinkgoRecover()
			_ = monitor.Start(monitorCtx)
		}()
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).WithTimeout(eventually).Should(Succeed())

		time.Sleep(time.Second) // let the informers' start-up garbage go
		goroutines, heap := runtime.NumGoroutine(), heapInUse()
		Expect(attacherGoroutines()).To(BeZero())
		for i := range recoveries {
			a.driver.SetReady(false)
			Eventually(func() error { return a.client.ReadyzCheck(nil) }).WithTimeout(eventually).WithPolling(10 * time.Millisecond).ShouldNot(Succeed())
			a.driver.SetReady(true)
			Eventually(recovered.Load).WithTimeout(eventually).WithPolling(10*time.Millisecond).Should(BeEquivalentTo(i+1), "recovery %d seen", i+1)
		}
		Expect(a.elected).NotTo(BeClosed(), "still a standby")
		Expect(a.driver.CallCount("ControllerPublishVolume", "")).To(BeZero(), "a standby never calls its driver")

		time.Sleep(time.Second)
		GinkgoWriter.Printf("standby: %d recoveries with %d failed attachments: goroutines %d -> %d (%d in the attacher's code), heap %+d bytes\n",
			recoveries, failed, goroutines, runtime.NumGoroutine(), attacherGoroutines(), int64(heapInUse())-int64(heap))
		Eventually(attacherGoroutines).WithTimeout(5*time.Second).WithPolling(100*time.Millisecond).Should(BeZero(),
			"no goroutine is left waiting to queue for a controller that does not run here")
		Eventually(runtime.NumGoroutine).WithTimeout(5*time.Second).WithPolling(100*time.Millisecond).Should(BeNumerically("<=", goroutines+noise),
			"goroutines flat after %d recoveries", recoveries)
		Eventually(func() int64 { return int64(heapInUse()) - int64(heap) }).
			WithTimeout(5*time.Second).WithPolling(200*time.Millisecond).Should(BeNumerically("<", 256<<10),
			"heap flat after %d recoveries", recoveries)
	})
})
