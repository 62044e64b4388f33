package metrics_test

import (
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/util/workqueue"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/csi-attacher/csi-attacher/internal/metrics"

	// controller-runtime's own workqueue metrics, which the provider replaces.
	_ "sigs.k8s.io/controller-runtime/pkg/controller"
)

// TestWorkqueueProviderNames checks that a queue created with a
// controller's name reports the reference's queue name in `name` and the
// controller in `controller`, in controller-runtime's registry.
func TestWorkqueueProviderNames(t *testing.T) {
	g := NewWithT(t)
	p := metrics.NewWorkqueueProvider(map[string]string{
		"test-attach": metrics.QueueVolumeAttachments,
		"test-detach": metrics.QueueVolumeAttachments,
	})
	for _, controller := range []string{"test-attach", "test-detach", "test-other"} {
		q := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: controller, MetricsProvider: p})
		q.Add("a")
		q.Add("b")
		defer q.ShutDown()
	}

	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	depth := map[[2]string]float64{}
	for _, f := range families {
		if f.GetName() != "workqueue_depth" {
			continue
		}
		for _, m := range f.GetMetric() {
			depth[[2]string{label(m, metrics.LabelQueueName), label(m, metrics.LabelController)}] = m.GetGauge().GetValue()
			g.Expect(m.GetLabel()).To(HaveLen(3), "name, controller and priority, as controller-runtime's")
		}
	}
	g.Expect(depth).To(HaveKeyWithValue([2]string{"csi-attacher-va", "test-attach"}, 2.0))
	g.Expect(depth).To(HaveKeyWithValue([2]string{"csi-attacher-va", "test-detach"}, 2.0))
	g.Expect(depth).To(HaveKeyWithValue([2]string{"test-other", "test-other"}, 2.0), "an unlisted controller keeps its name")
	g.Expect(depth).NotTo(HaveKey([2]string{"test-attach", "test-attach"}))
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
