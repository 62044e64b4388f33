package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Controller names, in logs and in the work-queue metrics.
const (
	VolumeAttachmentControllerName       = "volumeattachment"
	VolumeAttachmentDetachControllerName = "volumeattachment-detach"
)

// Event reasons on VolumeAttachments.
const (
	ReasonAttachFailed = "AttachFailed"
	ReasonDetachFailed = "DetachFailed"
	ReasonAttached     = "Attached"
	ReasonDetached     = "Detached"
)

// VolumeAttachmentReconciler attaches and detaches the volumes of one CSI
// driver. Exported fields are its configuration; SetupWithManager checks
// that the required ones are set.
type VolumeAttachmentReconciler struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads Secrets directly, so the cache never holds them.
	APIReader client.Reader
	// Attacher is the CSI client shared with the rest of the process.
	Attacher csi.Attacher
	// Recorder emits Events on VolumeAttachments. Optional.
	Recorder events.EventRecorder
	// DriverName is the CSI driver's name (GetPluginInfo); VolumeAttachments
	// whose spec.attacher differs are left alone.
	DriverName string
	// Trivial is set for drivers without PUBLISH_UNPUBLISH_VOLUME: attach only
	// marks the VolumeAttachment attached, with no finalizer and no CSI call.
	Trivial bool
	// PublishReadonly is the driver's PUBLISH_READONLY capability; without it
	// ControllerPublishVolume never asks for a read-only attachment.
	PublishReadonly bool
	// SingleNodeMultiWriter is the driver's SINGLE_NODE_MULTI_WRITER
	// capability, which selects the finer access-mode mapping.
	SingleNodeMultiWriter bool
	// DefaultFSType fills the mount capability's fs_type when the volume has
	// none (--default-fstype).
	DefaultFSType string
	// MaxConcurrentReconciles is the number of workers (--worker-threads).
	MaxConcurrentReconciles int
	// RetryIntervalStart and RetryIntervalMax bound the per-VolumeAttachment
	// exponential backoff after a failure.
	RetryIntervalStart, RetryIntervalMax time.Duration
	// Freshness remembers our own writes so a reconcile never acts on a
	// cached copy older than them. Created by SetupWithManager when nil.
	Freshness *freshness.Tracker
	// MaxInflightPerNode bounds concurrent CSI calls per node
	// (--max-inflight-per-node); 0 means no limit.
	MaxInflightPerNode int
	// Metrics records attach and detach latency and errors. Optional.
	Metrics *metrics.Metrics
	// WatchSecrets retries an attachment as soon as its ControllerPublish
	// Secret is created or updated, through a metadata-only watch of all
	// Secrets. It needs list and watch on Secrets cluster-wide (see
	// doctor.SecretWatchRights); without it a fixed Secret is picked up at the
	// next retry.
	WatchSecrets bool
	// OmitErrorCode leaves errorCode out of attachError and detachError, as
	// the reference does with its feature gate MutableCSINodeAllocatableCount
	// off (--feature-gates=MutableCSINodeAllocatableCount=false).
	OmitErrorCode bool

	finalizer string
	// force and trigger connect the ListVolumes reconciler: it flags a
	// VolumeAttachment for one forced sync and queues it here.
	force   *forceSync
	trigger chan event.GenericEvent
	locks   keyedMutex
	nodes   *nodeLimiter
	started startTimes
}

// SetupWithManager validates the configuration and registers the
// controller. SetupIndexes must have been called on the Manager first.
func (r *VolumeAttachmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("VolumeAttachmentReconciler: Client is required")
	case r.APIReader == nil:
		return errors.New("VolumeAttachmentReconciler: APIReader is required")
	case r.Attacher == nil && !r.Trivial:
		return errors.New("VolumeAttachmentReconciler: Attacher is required")
	case r.DriverName == "":
		return errors.New("VolumeAttachmentReconciler: DriverName is required")
	}
	r.finalizer = volume.FinalizerName(r.DriverName)
	if r.Freshness == nil {
		r.Freshness = freshness.New()
	}
	r.nodes = &nodeLimiter{limit: r.MaxInflightPerNode}
	r.Metrics.SetTrackedSource(r.TrackedObjects)
	if err := r.forgetDeleted(mgr); err != nil {
		return err
	}
	// Attach and detach have their own queues and workers, so a storm of
	// slow or failing detaches never delays new attaches, nor the other way
	// round. Both run the same level-based Reconcile; the per-object lock in
	// Reconcile keeps them from working on one object at once.
	b := ctrl.NewControllerManagedBy(mgr).
		Named(VolumeAttachmentControllerName).
		For(&storagev1.VolumeAttachment{}, builder.WithPredicates(r.ours(opAttach), deleting(false), vaChangeMatters())).
		Watches(&corev1.PersistentVolume{}, handler.EnqueueRequestsFromMapFunc(r.attachmentsOf(IndexVAByPV)),
			builder.WithPredicates(specOrDeletionChanged())).
		Watches(&storagev1.CSINode{}, handler.EnqueueRequestsFromMapFunc(r.attachmentsOf(IndexVAByNode)),
			builder.WithPredicates(specOrDeletionChanged())).
		WithOptions(r.controllerOptions(mgr.GetLogger()))
	if !r.Trivial {
		// The ListVolumes reconciler's findings, attached or being deleted
		// alike: Reconcile dispatches on the object's state, and the For
		// predicates do not apply to a raw source.
		r.force = newForceSync()
		r.trigger = make(chan event.GenericEvent, triggerBuffer)
		b = b.WatchesRawSource(source.Channel[client.Object](r.trigger, &handler.EnqueueRequestForObject{}))
		b = r.watchSecrets(b, false)
	}
	if err := b.Complete(r); err != nil {
		return err
	}
	if r.Trivial {
		// Nothing to undo: no finalizer, no detach, no secrets.
		return nil
	}
	detach := ctrl.NewControllerManagedBy(mgr).
		Named(VolumeAttachmentDetachControllerName).
		For(&storagev1.VolumeAttachment{}, builder.WithPredicates(r.ours(opDetach), deleting(true), vaChangeMatters())).
		WithOptions(r.controllerOptions(mgr.GetLogger()))
	return r.watchSecrets(detach, true).Complete(r)
}

// forgetDeleted makes every per-object map forget a VolumeAttachment, and
// the freshness tracker a PersistentVolume, once the cache sees it deleted.
func (r *VolumeAttachmentReconciler) forgetDeleted(mgr ctrl.Manager) error {
	if err := forgetOnDelete(mgr, &storagev1.VolumeAttachment{}, func(o client.Object) {
		r.Freshness.Forget(o.GetUID())
		r.force.consume(o.GetUID())
		r.started.forgetObject(o.GetName(), o.GetUID())
	}); err != nil {
		return fmt.Errorf("VolumeAttachmentReconciler: %w", err)
	}
	if err := forgetOnDelete(mgr, &corev1.PersistentVolume{}, forgetFreshness(r.Freshness)); err != nil {
		return fmt.Errorf("VolumeAttachmentReconciler: %w", err)
	}
	return nil
}

// watchSecrets adds the Secret watch to one of the two controllers when
// WatchSecrets is set: each gets the attachments on its side (being deleted
// or not), so a detach waiting for a Secret is retried in the detach lane.
// Both share one metadata-only informer.
func (r *VolumeAttachmentReconciler) watchSecrets(b *builder.Builder, deleting bool) *builder.Builder {
	if !r.WatchSecrets {
		return b
	}
	return b.WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.attachmentsUsingSecret(deleting)),
		builder.WithPredicates(secretChanged()))
}

func (r *VolumeAttachmentReconciler) controllerOptions(logger logr.Logger) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: r.MaxConcurrentReconciles,
		RateLimiter:             rateLimiter(r.RetryIntervalStart, r.RetryIntervalMax),
		NewQueue:                newQueue(logger),
	}
}

// queueMetrics labels the workqueue_* metrics of each controller with the
// reference attacher's queue name (name="csi-attacher-va" for both
// VolumeAttachment lanes, "csi-attacher-pv") next to the controller's own
// name (controller="volumeattachment", ...), so that dashboards built on
// either keep working.
var queueMetrics = metrics.NewWorkqueueProvider(map[string]string{
	VolumeAttachmentControllerName:       metrics.QueueVolumeAttachments,
	VolumeAttachmentDetachControllerName: metrics.QueueVolumeAttachments,
	PersistentVolumeControllerName:       metrics.QueuePersistentVolumes,
})

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

// deleting keeps the objects whose deletion state is want.
func deleting(want bool) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return !o.GetDeletionTimestamp().IsZero() == want
	})
}

// Reconcile drives one VolumeAttachment of our driver one step towards its
// desired state: attached while it exists, detached once it is deleted.
func (r *VolumeAttachmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// On shutdown the Manager cancels ctx, then waits for reconciles to
	// return. An operation already started runs to its end instead (the
	// CSI call is bounded by --timeout, and the grace period covers it, see
	// ShutdownGracePeriod), so a publish that reached the driver gets its
	// status written rather than being cut off half way. No new call starts.
	ctx = withStop(ctx)
	unlock := r.locks.lock(req.Name)
	defer unlock()
	if callAllowed(ctx) != nil {
		// This worker waited for the lock while the other side's call ran,
		// and SIGTERM came meanwhile.
		return ctrl.Result{}, nil
	}
	va := &storagev1.VolumeAttachment{}
	fresh, err := r.getFresh(ctx, req.NamespacedName, va)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.started.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fresh {
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	}
	if va.Spec.Attacher != r.DriverName {
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues(
		"Node", klog.KRef("", va.Spec.NodeName), "driver", r.DriverName))

	switch {
	case r.Trivial:
		err = r.reconcileTrivial(ctx, va)
	case va.DeletionTimestamp.IsZero():
		err = r.reconcileAttach(ctx, va)
	default:
		err = r.reconcileDetach(ctx, va)
	}
	return r.retryPolicy(ctx, err)
}

// retryPolicy decides when a failed reconcile runs again. An error that may
// still be in progress on the backend (timeouts, Unavailable, Aborted,
// ResourceExhausted, Canceled), and any error of ours such as a missing
// object, is returned for the exponential backoff from
// --retry-interval-start. A final gRPC error (InvalidArgument, NotFound,
// FailedPrecondition, ...) will not fix itself soon: it is retried at
// --retry-interval-max, and at once when the VolumeAttachment, its PV or its
// CSINode changes. A terminal error (an attachment that can never work as
// its objects are, see volume.Invalid) is not retried at all until one of
// them changes.
func (r *VolumeAttachmentReconciler) retryPolicy(ctx context.Context, err error) (ctrl.Result, error) {
	switch {
	case err == nil:
		return ctrl.Result{}, nil
	case errors.Is(err, errNodeBusy):
		return ctrl.Result{RequeueAfter: nodeBusyRetry}, nil
	case errors.Is(err, errShuttingDown):
		log.FromContext(ctx).V(4).Info("Not starting a CSI call: shutting down")
		return ctrl.Result{}, nil
	}
	if code, ok := csi.Code(err); ok && csi.IsFinalError(err) {
		// Not returned, so controller-runtime does not log it: log it here.
		log.FromContext(ctx).Info("Operation failed with a final error; retrying at the longest interval",
			"grpcCode", code.String(), "retryAfter", r.RetryIntervalMax.String(), "error", err.Error())
		return ctrl.Result{RequeueAfter: r.RetryIntervalMax}, nil
	}
	return ctrl.Result{}, err
}

// reconcileTrivial marks the VolumeAttachment attached for a driver that
// has no ControllerPublishVolume: there is nothing to call and nothing to
// undo, hence no finalizer.
func (r *VolumeAttachmentReconciler) reconcileTrivial(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if va.Status.Attached || !va.DeletionTimestamp.IsZero() {
		return nil
	}
	base := va.DeepCopy()
	va.Status.Attached = true
	if err := r.patchStatus(ctx, va, base); err != nil {
		err = fmt.Errorf("failed to mark VolumeAttachment %s attached: %w", va.Name, err)
		r.event(va, corev1.EventTypeWarning, ReasonAttachFailed, "Attach", "%s", eventNote(err))
		return err
	}
	log.FromContext(ctx).V(2).Info("Marked volume attached (driver has no ControllerPublishVolume)")
	return nil
}

// ours keeps only VolumeAttachments of our driver. It also notes when op
// (the attach or detach of the controller it guards) is first seen, as the
// event arrives, so the latency metrics include the time spent queued.
//
// Each controller notes only its own operation: a controller receives the
// events of one object in order, so once the attach controller has seen the
// deletion (and forgotten the attach start), no older event of that object
// can record it again. Noting from both controllers' event streams, which
// run independently, could bring an entry back after the object was gone.
func (r *VolumeAttachmentReconciler) ours(op operation) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		va, ok := o.(*storagev1.VolumeAttachment)
		if !ok || va.Spec.Attacher != r.DriverName {
			return false
		}
		switch {
		case op.metric == metrics.OperationAttach && va.DeletionTimestamp.IsZero() && !va.Status.Attached:
			r.started.observe("attach", va.Name, va.UID, time.Now())
		case op.metric == metrics.OperationAttach && !va.DeletionTimestamp.IsZero():
			r.started.forgetOp("attach", va.Name, va.UID)
		case op.metric == metrics.OperationDetach && !va.DeletionTimestamp.IsZero() && hasFinalizer(va, r.finalizer):
			r.started.observe("detach", va.Name, va.UID, time.Now())
		}
		return true
	})
}

// attachmentsOf maps an object (a PV or a CSINode) to the VolumeAttachments
// of our driver that use it, through a field index, so that an attachment
// waiting for that object is retried as soon as it appears or changes. The
// list is only read, so it skips the cache's deep copies.
func (r *VolumeAttachmentReconciler) attachmentsOf(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &storagev1.VolumeAttachmentList{}
		if err := r.Client.List(ctx, list, client.MatchingFields{index: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "Failed to list VolumeAttachments by index", "index", index)
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Spec.Attacher == r.DriverName {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	}
}

// vaChangeMatters drops updates that change nothing but the attach or
// detach error. Those are our own error writes: reacting to them would
// retry at once and defeat the backoff.
func vaChangeMatters() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldVA, ok1 := e.ObjectOld.(*storagev1.VolumeAttachment)
		newVA, ok2 := e.ObjectNew.(*storagev1.VolumeAttachment)
		if !ok1 || !ok2 || oldVA.ResourceVersion == newVA.ResourceVersion {
			return true
		}
		if oldVA.Status.AttachError == nil && oldVA.Status.DetachError == nil &&
			newVA.Status.AttachError == nil && newVA.Status.DetachError == nil {
			return true
		}
		return !equality.Semantic.DeepEqual(withoutErrors(oldVA), withoutErrors(newVA))
	}}
}

// withoutErrors returns a shallow copy without the fields our error writes
// change. Only top-level fields of the copy are cleared and DeepEqual only
// reads, so nothing shared with the cache is touched and no deep copy is
// needed.
func withoutErrors(va *storagev1.VolumeAttachment) *storagev1.VolumeAttachment {
	c := *va
	c.ResourceVersion = ""
	c.ManagedFields = nil
	c.Status.AttachError = nil
	c.Status.DetachError = nil
	return &c
}

// specOrDeletionChanged passes creations and the updates that can unblock
// an attachment: a changed spec or a deletion. Metadata-only updates, our
// own finalizer patches among them, are dropped.
func specOrDeletionChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			switch o := e.ObjectNew.(type) {
			case *corev1.PersistentVolume:
				old, ok := e.ObjectOld.(*corev1.PersistentVolume)
				return !ok || !equality.Semantic.DeepEqual(old.Spec, o.Spec) ||
					old.DeletionTimestamp.IsZero() != o.DeletionTimestamp.IsZero()
			case *storagev1.CSINode:
				old, ok := e.ObjectOld.(*storagev1.CSINode)
				return !ok || !equality.Semantic.DeepEqual(old.Spec, o.Spec)
			default:
				return true
			}
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// rateLimiter is the per-object exponential backoff between retries. There
// is deliberately no global token bucket: one failing volume must not slow
// the others down.
func rateLimiter(start, limit time.Duration) workqueue.TypedRateLimiter[reconcile.Request] {
	if start <= 0 {
		start = time.Second
	}
	if limit < start {
		limit = start
	}
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](start, limit)
}
