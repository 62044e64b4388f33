package queue

import (
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

// Controller names, in logs and in the work-queue metrics.
const (
	VolumeAttachment       = "volumeattachment"
	VolumeAttachmentDetach = "volumeattachment-detach"
	PersistentVolume       = "persistentvolume"
)

// queueMetrics labels the workqueue_* metrics of each controller with the
// reference attacher's queue name (name="csi-attacher-va" for both
// VolumeAttachment lanes, "csi-attacher-pv") next to the controller's own
// name (controller="volumeattachment", ...), so that dashboards built on
// either keep working.
var queueMetrics = metrics.NewWorkqueueProvider(map[string]string{
	VolumeAttachment:       metrics.QueueVolumeAttachments,
	VolumeAttachmentDetach: metrics.QueueVolumeAttachments,
	PersistentVolume:       metrics.QueuePersistentVolumes,
})

// Options are the controller options every controller of the attacher
// uses: workers, the per-object backoff between retries, and the queue.
func Options(logger logr.Logger, workers int, retryStart, retryMax time.Duration) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: workers,
		RateLimiter:             RateLimiter(retryStart, retryMax),
		NewQueue:                newQueue(logger),
	}
}

// newQueue builds controller-runtime's default priority queue, except that
// its periodic dump of every queued item, logged at V(5) (our default
// level), moves to V(7): with thousands of items queued, each dump is a log
// line of hundreds of kilobytes, and the encoder's buffers that grew to hold
// it stay in memory; and its metrics carry the reference's queue names
// (queueMetrics).
func newQueue(logger logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, limiter workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		return priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = logger.WithValues("controller", name).V(2)
			o.RateLimiter = limiter
			o.MetricProvider = queueMetrics
		})
	}
}

// RateLimiter is the per-object exponential backoff between retries, from
// start (--retry-interval-start) up to limit (--retry-interval-max). There
// is deliberately no global token bucket: one failing volume must not slow
// the others down.
func RateLimiter(start, limit time.Duration) workqueue.TypedRateLimiter[reconcile.Request] {
	if start <= 0 {
		start = time.Second
	}
	if limit < start {
		limit = start
	}
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](start, limit)
}
