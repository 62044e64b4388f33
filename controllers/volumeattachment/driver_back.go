package volumeattachment

import (
	"context"
	"sync"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// RetryFailed queues every VolumeAttachment of the driver whose last
// attempt failed (attachError or detachError set), for the CSI client's
// HealthMonitor.OnRecovered: a call that failed because the driver was
// gone is tried again as soon as the driver is back, instead of at the end
// of its backoff (up to --retry-interval-max).
//
// The monitor runs on every replica, but only the leader's controllers
// run. On a replica that does not lead RetryFailed does nothing at all: it
// lists nothing and queues nothing, so a standby whose driver comes and
// goes keeps nothing. On the leader it adds the names straight to the
// attach lane's work queue, which never blocks and merges duplicates.
func (r *Reconciler) RetryFailed(ctx context.Context) {
	q := r.retries.get()
	if q == nil {
		return
	}
	logger := log.FromContext(ctx).WithName("driver-back")
	var list storagev1.VolumeAttachmentList
	// Read only (names are queued), so no deep copies.
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "Cannot list the VolumeAttachments to retry now that the CSI driver is back")
		return
	}
	count := 0
	for i := range list.Items {
		va := &list.Items[i]
		if va.Spec.Attacher == r.DriverName && (va.Status.AttachError != nil || va.Status.DetachError != nil) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: va.Name}})
			count++
		}
	}
	if count > 0 {
		logger.Info("The CSI driver is back: retrying the VolumeAttachments whose last attempt failed", "count", count)
	}
}

// leaderQueue holds the attach lane's work queue while its controller
// runs, that is while this replica leads. It is a source of the
// controller: controller-runtime hands a source the queue when it starts
// the controller, and the controller's context ends when it stops.
type leaderQueue struct {
	mu sync.Mutex
	q  workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// Start implements source.TypedSource: it keeps q until ctx ends.
func (l *leaderQueue) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	l.mu.Lock()
	l.q = q
	l.mu.Unlock()
	context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.q == q {
			l.q = nil
		}
	})
	return nil
}

// get returns the queue, nil while the controller is not running.
func (l *leaderQueue) get() workqueue.TypedRateLimitingInterface[reconcile.Request] {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.q
}
