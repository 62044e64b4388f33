package controllers_test

import (
	"context"
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

var _ = Describe("Metrics", func() {
	It("counts a known sequence of attaches, failures and detaches", func() {
		const driverName = "metrics.csi.test"
		ctx := context.Background()
		objs := &tracker{}
		m := metrics.New(driverName)
		registry := prometheus.NewRegistry()
		Expect(m.Register(registry)).To(Succeed())
		m.SetStateSource(func() (int, int, int, int, error) {
			list := &storagev1.VolumeAttachmentList{}
			if err := k8sClient.List(ctx, list); err != nil {
				return 0, 0, 0, 0, err
			}
			var ours []storagev1.VolumeAttachment
			for _, va := range list.Items {
				if va.Spec.Attacher == driverName {
					ours = append(ours, va)
				}
			}
			a, b, c, d := metrics.Count(ours, volume.FinalizerName(driverName))
			return a, b, c, d, nil
		})
		a := startOwnAttacher(driverName, attacherOptions{metrics: m})
		DeferCleanup(objs.cleanup, ctx)
		server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
		DeferCleanup(server.Close)

		node := uniqueName("metrics-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < 3; i++ {
			pv := newPV(uniqueName("metrics-pv"), driverName, uniqueName("metrics-vol"))
			if i == 2 {
				a.driver.InjectError(fake.MethodPublish, pv.Spec.CSI.VolumeHandle, codes.Internal, 0)
			}
			objs.create(ctx, pv)
			va := newVA(uniqueName("metrics-va"), driverName, node, pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		expectAttached(ctx, vas[0].Name)
		expectAttached(ctx, vas[1].Name)
		expectAttachError(ctx, vas[2].Name, "Internal")

		families := scrape(server.URL)
		Expect(gaugeByLabel(families, metrics.VolumeAttachments, "state")).To(Equal(map[string]float64{
			"attached": 2, "attaching": 0, "detaching": 0, "failed": 1,
		}))
		Expect(counterWith(families, metrics.OperationErrorsTotal, "operation", "attach", "grpc_code", "Internal")).To(BeNumerically(">=", 1))

		a.driver.ClearFaults()
		expectAttached(ctx, vas[2].Name)
		Expect(k8sClient.Delete(ctx, vas[0])).To(Succeed())
		expectGone(ctx, vas[0])

		families = scrape(server.URL)
		Expect(histogramCount(families, metrics.AttachDurationSeconds)).To(BeEquivalentTo(3))
		Expect(histogramCount(families, metrics.DetachDurationSeconds)).To(BeEquivalentTo(1))
		Expect(gaugeByLabel(families, metrics.VolumeAttachments, "state")).To(Equal(map[string]float64{
			"attached": 2, "attaching": 0, "detaching": 0, "failed": 0,
		}))
		Expect(counterWith(families, metrics.OperationErrorsTotal, "operation", "detach", "grpc_code", "Internal")).To(BeZero())
	})
})

func scrape(url string) map[string]*dto.MetricFamily {
	GinkgoHelper()
	resp, err := http.Get(url)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return families
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func gaugeByLabel(families map[string]*dto.MetricFamily, name, label string) map[string]float64 {
	GinkgoHelper()
	Expect(families).To(HaveKey(name))
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		out[labelsOf(m)[label]] = m.GetGauge().GetValue()
	}
	return out
}

func histogramCount(families map[string]*dto.MetricFamily, name string) uint64 {
	GinkgoHelper()
	Expect(families).To(HaveKey(name))
	var n uint64
	for _, m := range families[name].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}
