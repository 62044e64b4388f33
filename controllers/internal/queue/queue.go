package queue

import (
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
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

// StaleRecheck is when a reconcile that found the cache behind our own
// write looks again, in case the event that brings the newer copy is one
// the predicates drop.
const StaleRecheck = time.Second

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
// uses: workers, the per-object backoff between retries, the queue, and the
// logger of each reconcile.
func Options(logger logr.Logger, workers int, retryStart, retryMax time.Duration) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: workers,
		RateLimiter:             RateLimiter(retryStart, retryMax),
		NewQueue:                newQueue(logger),
	}
}

// VolumeAttachmentLogs and PersistentVolumeLogs build each reconcile's
// logger: the controller's name and the driver, set once, and the object
// as kind=name. controller-runtime's own adds the group, the kind, an empty
// namespace and the name again to every reconcile (cluster-scoped objects
// only here), which every line of the reconcile then carries and which
// cost a logger derivation each.
func VolumeAttachmentLogs(logger logr.Logger, controllerName, driver string) func(*reconcile.Request) logr.Logger {
	base := logger.WithValues("controller", controllerName, "driver", driver)
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return base
		}
		return base.WithValues("VolumeAttachment", klog.KRef("", req.Name))
	}
}

// PersistentVolumeLogs is VolumeAttachmentLogs for PersistentVolumes.
func PersistentVolumeLogs(logger logr.Logger, controllerName, driver string) func(*reconcile.Request) logr.Logger {
	base := logger.WithValues("controller", controllerName, "driver", driver)
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return base
		}
		return base.WithValues("PersistentVolume", klog.KRef("", req.Name))
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
