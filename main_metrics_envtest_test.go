package main

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

// TestMetricsWiring runs the attacher command and reads on its /metrics
// what main.go and the reconciler's setup wire: the build info, the bound
// of CSI calls in flight, and the age of a pending attach, computed from
// the cache at scrape time.
func TestMetricsWiring(t *testing.T) {
	startAPIServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	kubeconfig := attacherUser(t, "attacher-metrics", nil, true, nil)
	p := startAttacherCommand(t, kubeconfig, "--max-inflight=64")

	// Its PersistentVolume does not exist, so it is never attached (and
	// gets no finalizer: the source is resolved first).
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-wiring-"},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: binaryTestDriver,
			NodeName: "metrics-wiring-node",
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("metrics-wiring-missing-pv")},
		},
	}
	g.Expect(apiServer.k8s.Create(ctx, va)).To(Succeed())
	t.Cleanup(func() { _ = client.IgnoreNotFound(apiServer.k8s.Delete(ctx, va)) })

	scrape := func(g Gomega) map[string]*dto.MetricFamily {
		code, body, err := getURL("http://" + p.metrics + "/metrics")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK))
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
		g.Expect(err).NotTo(HaveOccurred())
		return mfs
	}
	// The value of the only series of name whose labels include want.
	value := func(g Gomega, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
		g.Expect(mfs).To(HaveKey(name))
		var found []float64
		for _, m := range mfs[name].GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range want {
				match = match && ls[k] == v
			}
			if match {
				found = append(found, m.GetGauge().GetValue())
			}
		}
		g.Expect(found).To(HaveLen(1), "%s%v", name, want)
		return found[0]
	}

	rev, date := buildStamp()
	g.Eventually(func(g Gomega) {
		mfs := scrape(g)
		g.Expect(value(g, mfs, metrics.BuildInfo, map[string]string{
			metrics.LabelDriverName: binaryTestDriver, metrics.LabelVersion: version, metrics.LabelCommit: rev,
			metrics.LabelBuildDate: date, metrics.LabelGoVersion: runtime.Version(),
		})).To(Equal(1.0))
		g.Expect(value(g, mfs, metrics.MaxInflight, map[string]string{metrics.LabelDriverName: binaryTestDriver})).To(Equal(64.0),
			"the bound starts at --max-inflight")
		g.Expect(value(g, mfs, metrics.OldestPendingSeconds, map[string]string{metrics.LabelOperation: metrics.OperationAttach})).
			To(BeNumerically(">=", 2), "the attachment has waited since its creation")
		g.Expect(value(g, mfs, metrics.OldestPendingSeconds, map[string]string{metrics.LabelOperation: metrics.OperationDetach})).
			To(BeZero())
	}).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())

	// Gone, so nothing is pending any more.
	g.Expect(apiServer.k8s.Delete(ctx, va)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(value(g, scrape(g), metrics.OldestPendingSeconds, map[string]string{metrics.LabelOperation: metrics.OperationAttach})).
			To(BeZero())
	}).WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
}
