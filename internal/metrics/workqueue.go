package metrics

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Queue names of the reference attacher, the `name` label of its workqueue_*
// metrics. Dashboards and alerts written for it select on them.
const (
	QueueVolumeAttachments = "csi-attacher-va"
	QueuePersistentVolumes = "csi-attacher-pv"
)

// Label names of the workqueue_* metrics: controller-runtime's set, kept so
// that queries written for controller-runtime operators keep working.
const (
	LabelQueueName  = "name"
	LabelController = "controller"
	LabelPriority   = "priority"
)

// The workqueue_* vectors. They have controller-runtime's names, help and
// label names (the help strings must match for the swap in
// NewWorkqueueProvider); only the value of `name` differs: controller-runtime sets it
// to the controller's name, we set the reference's queue name.
var (
	wqDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.DepthKey,
		Help: "Current depth of workqueue by workqueue and priority",
	}, []string{LabelQueueName, LabelController, LabelPriority})
	wqAdds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.AddsKey,
		Help: "Total number of adds handled by workqueue",
	}, []string{LabelQueueName, LabelController})
	wqLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.QueueLatencyKey,
		Help:    "How long in seconds an item stays in workqueue before being requested",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{LabelQueueName, LabelController})
	wqWorkDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.WorkDurationKey,
		Help:    "How long in seconds processing an item from workqueue takes.",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{LabelQueueName, LabelController})
	wqUnfinished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.UnfinishedWorkKey,
		Help: "How many seconds of work has been done that " +
			"is in progress and hasn't been observed by work_duration. Large " +
			"values indicate stuck threads. One can deduce the number of stuck " +
			"threads by observing the rate at which this increases.",
	}, []string{LabelQueueName, LabelController})
	wqLongestRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.LongestRunningProcessorKey,
		Help: "How many seconds has the longest running " +
			"processor for workqueue been running.",
	}, []string{LabelQueueName, LabelController})
	wqRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: ctrlmetrics.WorkQueueSubsystem, Name: ctrlmetrics.RetriesKey,
		Help: "Total number of items added to the workqueue with a non-zero delay (rate-limited requeues, explicit RequeueAfter or AddAfter calls)",
	}, []string{LabelQueueName, LabelController})

	wqOnce sync.Once
)

// WorkqueueProvider is the workqueue.MetricsProvider of the attacher's
// queues. A queue is created with its controller's name; the provider
// writes that name into the `controller` label and the reference's queue
// name (Queues) into `name`. The attach and detach lanes are two
// controllers but, like the reference's one VolumeAttachment queue, both
// report name="csi-attacher-va", so a query on the name sums them and a
// query on the controller tells them apart.
//
// The depth has no per-priority series: controller-runtime only splits it
// for its own (internal) provider type, so `priority` is always "".
type WorkqueueProvider struct {
	// Queues maps a controller name to its queue name. A controller that
	// is not listed reports its own name, as with controller-runtime.
	Queues map[string]string
}

// NewWorkqueueProvider returns the provider and, on the first call, puts
// its vectors into controller-runtime's registry in place of the
// controller-runtime ones of the same names (whose name label would repeat
// the controller's). Queues are created after this, so nothing writes to
// the replaced vectors.
func NewWorkqueueProvider(queues map[string]string) WorkqueueProvider {
	wqOnce.Do(func() {
		for _, c := range []prometheus.Collector{wqDepth, wqAdds, wqLatency, wqWorkDuration, wqUnfinished, wqLongestRunning, wqRetries} {
			// Unregister matches collectors by their descriptors (name and
			// label names), so ours removes controller-runtime's twin.
			ctrlmetrics.Registry.Unregister(c)
			if err := ctrlmetrics.Registry.Register(c); err != nil {
				panic(fmt.Sprintf("workqueue metrics: %v", err))
			}
		}
	})
	return WorkqueueProvider{Queues: queues}
}

var _ workqueue.MetricsProvider = WorkqueueProvider{}

func (p WorkqueueProvider) labels(controller string) []string {
	name, ok := p.Queues[controller]
	if !ok {
		name = controller
	}
	return []string{name, controller}
}

// NewDepthMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewDepthMetric(controller string) workqueue.GaugeMetric {
	return wqDepth.WithLabelValues(append(p.labels(controller), "")...)
}

// NewAddsMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewAddsMetric(controller string) workqueue.CounterMetric {
	return wqAdds.WithLabelValues(p.labels(controller)...)
}

// NewLatencyMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewLatencyMetric(controller string) workqueue.HistogramMetric {
	return wqLatency.WithLabelValues(p.labels(controller)...)
}

// NewWorkDurationMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewWorkDurationMetric(controller string) workqueue.HistogramMetric {
	return wqWorkDuration.WithLabelValues(p.labels(controller)...)
}

// NewUnfinishedWorkSecondsMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewUnfinishedWorkSecondsMetric(controller string) workqueue.SettableGaugeMetric {
	return wqUnfinished.WithLabelValues(p.labels(controller)...)
}

// NewLongestRunningProcessorSecondsMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewLongestRunningProcessorSecondsMetric(controller string) workqueue.SettableGaugeMetric {
	return wqLongestRunning.WithLabelValues(p.labels(controller)...)
}

// NewRetriesMetric implements workqueue.MetricsProvider.
func (p WorkqueueProvider) NewRetriesMetric(controller string) workqueue.CounterMetric {
	return wqRetries.WithLabelValues(p.labels(controller)...)
}
