package controllers_test

import (
	"context"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

var _ = Describe("csi_attacher_max_inflight", func() {
	It("starts at --max-inflight, shows the halved bound while the driver throttles, and comes back", func() {
		const (
			driverName = "maxinflight.csi.test"
			volumes    = 12
			bound      = 8
		)
		ctx := context.Background()
		objs := &tracker{}
		m := metrics.New(driverName)
		registry := prometheus.NewRegistry()
		Expect(m.Register(registry)).To(Succeed())
		// gauge is the exported value, -1 while it is not exported.
		gauge := func() float64 {
			mfs, err := registry.Gather()
			Expect(err).NotTo(HaveOccurred())
			for _, mf := range mfs {
				if mf.GetName() == metrics.MaxInflight {
					return mf.GetMetric()[0].GetGauge().GetValue()
				}
			}
			return -1
		}

		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second, maxInflight: bound, metrics: m})
		DeferCleanup(objs.cleanup, ctx)
		Expect(gauge()).To(BeEquivalentTo(bound), "set at setup, before any call")

		// The lowest value seen while the attachments go through; the
		// halved bound lasts until enough calls have succeeded again.
		var (
			mu     sync.Mutex
			lowest = float64(bound)
		)
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(sampled)
			for {
				if v := gauge(); v >= 0 {
					mu.Lock()
					lowest = min(lowest, v)
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()

		a.driver.SetLatency(fake.MethodPublish, "", 300*time.Millisecond)
		// A cloud API throttling the account: the first calls fail on
		// every node.
		a.driver.InjectError(fake.MethodPublish, "", codes.ResourceExhausted, 2*volumes)
		nodes := []string{uniqueName("maxinflight-a"), uniqueName("maxinflight-b"), uniqueName("maxinflight-c")}
		for _, n := range nodes {
			objs.create(ctx, newCSINode(n, driverName, "id-"+n))
		}
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < volumes; i++ {
			pv := newPV(uniqueName("maxinflight-pv"), driverName, uniqueName("maxinflight-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("maxinflight-va"), driverName, nodes[i%len(nodes)], pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
		// Back at --max-inflight once the driver takes calls again.
		Eventually(gauge).Should(BeEquivalentTo(bound))
		close(stop)
		<-sampled
		mu.Lock()
		defer mu.Unlock()
		Expect(lowest).To(BeNumerically("<=", bound/2), "the halved bound was exported while the driver throttled")
		Expect(lowest).To(BeNumerically(">=", 1))
	})
})
