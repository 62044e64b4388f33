package controllers_test

import (
	"context"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

var _ = Describe("Driver down and back", func() {
	It("keeps running, reports not ready, and converges once the driver returns", func() {
		const driverName = "outage.csi.test"
		ctx := context.Background()
		objs := &tracker{}
		logger, logs := bufferLogger()
		// A backoff far beyond the test's patience: the VolumeAttachment
		// that failed while the driver was gone must be retried because the
		// driver came back, not because its backoff ran out.
		a := startOwnAttacher(driverName, attacherOptions{logger: logger, retryStart: time.Minute, retryMax: 5 * time.Minute})
		DeferCleanup(objs.cleanup, ctx)
		monitorCtx, stopMonitor := context.WithCancel(ctx)
		DeferCleanup(stopMonitor)
		go func() {
			defer GinkgoRecover()
			monitor := a.client.HealthMonitor(100 * time.Millisecond)
			monitor.OnRecovered(a.attacher.RetryFailed)
			_ = monitor.Start(monitorCtx)
		}()
		m := metrics.New(driverName)
		registry := prometheus.NewRegistry()
		Expect(m.Register(registry)).To(Succeed())
		go func() {
			defer GinkgoRecover()
			_ = metrics.DriverGauges{Metrics: m, Driver: a.client, Interval: 50 * time.Millisecond}.Start(monitorCtx)
		}()
		gauge := func(name string) func() float64 {
			return func() float64 {
				families, err := registry.Gather()
				Expect(err).NotTo(HaveOccurred())
				for _, f := range families {
					if f.GetName() == name {
						if g := f.GetMetric()[0].GetGauge(); g != nil {
							return g.GetValue()
						}
						return f.GetMetric()[0].GetCounter().GetValue()
					}
				}
				return -1
			}
		}
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).WithTimeout(eventually).Should(Succeed())
		Eventually(gauge(metrics.DriverReady)).WithTimeout(eventually).Should(BeEquivalentTo(1))

		node := uniqueName("outage-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		a.driver.Stop()
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).
			WithTimeout(eventually).WithPolling(pollInterval).ShouldNot(Succeed(), "/readyz turns false while the driver is gone")
		Eventually(gauge(metrics.DriverReady)).WithTimeout(eventually).Should(BeEquivalentTo(0))
		Eventually(gauge(metrics.CSIConnectionUp)).WithTimeout(eventually).Should(BeEquivalentTo(0))
		Eventually(gauge(metrics.DriverOutagesTotal)).WithTimeout(eventually).Should(BeEquivalentTo(1))
		Eventually(logs.String).WithTimeout(eventually).Should(ContainSubstring("Lost connection to the CSI driver"))

		pv := newPV(uniqueName("outage-pv"), driverName, uniqueName("outage-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("outage-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "Unavailable")
		Expect(got.Status.AttachError.ErrorCode).To(HaveValue(BeEquivalentTo(codes.Unavailable)))
		Expect(got.Status.Attached).To(BeFalse())

		// Every retry its own writes queued has run; it now waits out its
		// backoff.
		Consistently(func() bool {
			var cur storagev1.VolumeAttachment
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(va), &cur)).To(Succeed())
			return cur.Status.Attached
		}).WithTimeout(2 * time.Second).WithPolling(pollInterval).Should(BeFalse())

		Expect(a.driver.Start(filepath.Join(a.dir, "csi.sock"))).To(Succeed())
		back := time.Now()
		Eventually(func() error { return a.client.ReadyzCheck(nil) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed(), "/readyz turns true again")
		expectAttached(ctx, va.Name)
		Expect(time.Since(back)).To(BeNumerically("<", 10*time.Second), "retried when the driver came back, not after its 1-minute backoff")
		Eventually(gauge(metrics.DriverReady)).WithTimeout(eventually).Should(BeEquivalentTo(1))
		Expect(gauge(metrics.DriverOutagesTotal)()).To(BeEquivalentTo(1), "one outage counted")
		Expect(logs.String()).To(ContainSubstring("The CSI driver is reachable and ready again"))
		Expect(a.driver.Published(pv.Spec.CSI.VolumeHandle)).To(Equal([]string{"id-" + node}))
		Expect(a.driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(Equal(1), "calls while the driver was down never reached it")
	})
})
