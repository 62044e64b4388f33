package volumeattachment

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/attachment"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Event reasons on VolumeAttachments.
const (
	ReasonAttachFailed = "AttachFailed"
	ReasonDetachFailed = "DetachFailed"
	ReasonAttached     = "Attached"
	ReasonDetached     = "Detached"
)

// Reconciler attaches and detaches the volumes of one CSI driver that has
// ControllerPublishVolume. Exported fields are its configuration;
// SetupWithManager checks that the required ones are set.
type Reconciler struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// Resolver works out the source, capability, Secret and node ID of each
	// call; it is shared with the drift pass.
	Resolver *attachment.Resolver
	// Attacher is the CSI client shared with the rest of the process.
	Attacher csi.Attacher
	// Recorder emits Events on VolumeAttachments. Optional.
	Recorder events.EventRecorder
	// DriverName is the CSI driver's name (GetPluginInfo); VolumeAttachments
	// whose spec.attacher differs are left alone.
	DriverName string
	// Workers is the number of workers of each lane (--worker-threads).
	Workers int
	// RetryIntervalStart and RetryIntervalMax bound the per-VolumeAttachment
	// exponential backoff after a failure.
	RetryIntervalStart, RetryIntervalMax time.Duration
	// Freshness remembers our own writes so a reconcile never acts on a
	// cached copy older than them. Shared with the PersistentVolume
	// reconciler and the Resolver.
	Freshness *freshness.Tracker
	// Force carries the attachments the drift pass found the driver
	// disagreeing with, each marked for one forced sync.
	Force *forcesync.Queue
	// MaxInflightPerNode bounds concurrent CSI calls per node
	// (--max-inflight-per-node); 0 means no limit.
	MaxInflightPerNode int
	// MaxInflight bounds concurrent CSI calls in all (--max-inflight); the
	// bound halves while the driver answers ResourceExhausted across the
	// cluster (see callbound.go) and grows back by itself. 0 means no limit.
	MaxInflight int
	// Metrics records attach and detach latency and errors. Optional.
	Metrics *metrics.Metrics
	// WatchSecrets retries an attachment as soon as its ControllerPublish
	// Secret is created or updated, through a metadata-only watch of all
	// Secrets. It needs list and watch on Secrets cluster-wide (see
	// rights.SecretWatchRights); without it a fixed Secret is picked up at the
	// next retry.
	WatchSecrets bool
	// Fence, with leader election, keeps CSI calls from starting while the
	// Lease renewal is overdue, and holds the attachments the previous
	// leader may still be calling the driver for after an unclean takeover
	// (leader.Fence). Nil without leader election.
	Fence Fence
	// OmitErrorCode leaves errorCode out of attachError and detachError, as
	// the reference does with its feature gate MutableCSINodeAllocatableCount
	// off (--feature-gates=MutableCSINodeAllocatableCount=false).
	OmitErrorCode bool

	finalizer string
	locks     keyedMutex
	nodes     *nodeLimiter
	calls     *callLimiter
	wakers    *wakers
	started   startTimes
	// retries is the attach lane's queue while this replica leads, for
	// RetryFailed.
	retries leaderQueue
}

// SetupWithManager validates the configuration and registers the attach
// and detach lanes. cache.SetupIndexes must have been called on the Manager
// first, and the Manager must not have started: the lanes' watches
// (VolumeAttachments, PersistentVolumes, CSINodes, Secret metadata) join the
// informers before their first list (queue.Early). ctx bounds those watches.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("VolumeAttachment reconciler: Client is required")
	case r.Resolver == nil:
		return errors.New("VolumeAttachment reconciler: Resolver is required")
	case r.Attacher == nil:
		return errors.New("VolumeAttachment reconciler: Attacher is required")
	case r.DriverName == "":
		return errors.New("VolumeAttachment reconciler: DriverName is required")
	case r.Freshness == nil:
		return errors.New("VolumeAttachment reconciler: Freshness is required")
	case r.Force == nil:
		return errors.New("VolumeAttachment reconciler: Force is required")
	}
	r.finalizer = volume.FinalizerName(r.DriverName)
	r.wakers = newWakers()
	r.nodes = &nodeLimiter{limit: r.MaxInflightPerNode, wake: r.wakers.wake}
	r.calls = newCallLimiter(r.MaxInflight, r.throttled(mgr.GetLogger()))
	if err := r.followObjects(mgr.GetCache()); err != nil {
		return fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	opts := queue.Options(mgr.GetLogger(), r.Workers, r.RetryIntervalStart, r.RetryIntervalMax)
	attachOpts, detachOpts := opts, opts
	attachOpts.LogConstructor = queue.VolumeAttachmentLogs(mgr.GetLogger(), queue.VolumeAttachment, r.DriverName)
	detachOpts.LogConstructor = queue.VolumeAttachmentLogs(mgr.GetLogger(), queue.VolumeAttachmentDetach, r.DriverName)
	// Attach and detach have their own queues and workers, so a storm of
	// slow or failing detaches never delays new attaches, nor the other way
	// round. Both run the same level-based Reconcile; the per-object lock in
	// Reconcile keeps them from working on one object at once.
	//
	// Pending attachments are queued ahead of idle ones, whatever event
	// brought them, so the backlog a new leader finds waits only for the
	// work queued before it (see queue.ByState). Idle ones, which need
	// nothing, are not queued by their own events at all (workToDo).
	idle := queue.IdleAttachment(r.finalizer)
	byState := queue.ByState(idle)
	attachVAs, err := queue.NewEarly(ctx, mgr.GetCache(), &storagev1.VolumeAttachment{}, byState,
		ofDriver(r.DriverName), deleting(false), changeMatters(), workToDo(idle))
	if err != nil {
		return fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	attachPVs, err := queue.NewEarly(ctx, mgr.GetCache(), &corev1.PersistentVolume{},
		handler.EnqueueRequestsFromMapFunc(attachmentsOf(r.Client, r.DriverName, cache.IndexVAByPV, idle)), specOrDeletionChanged())
	if err != nil {
		return fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	attachNodes, err := queue.NewEarly(ctx, mgr.GetCache(), &storagev1.CSINode{},
		handler.EnqueueRequestsFromMapFunc(attachmentsOf(r.Client, r.DriverName, cache.IndexVAByNode, idle)), specOrDeletionChanged())
	if err != nil {
		return fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	detachVAs, err := queue.NewEarly(ctx, mgr.GetCache(), &storagev1.VolumeAttachment{}, byState,
		ofDriver(r.DriverName), deleting(true), changeMatters(), workToDo(idle))
	if err != nil {
		return fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	attach := ctrl.NewControllerManagedBy(mgr).
		Named(queue.VolumeAttachment).
		WatchesRawSource(attachVAs).
		WatchesRawSource(attachPVs).
		WatchesRawSource(attachNodes).
		// The drift pass's findings, attached or being deleted alike:
		// Reconcile dispatches on the object's state, and the
		// VolumeAttachment predicates do not apply to a raw source.
		WatchesRawSource(r.Force.Source()).
		// The driver-back retries (RetryFailed), which need the queue only
		// while the controller runs.
		WatchesRawSource(&r.retries).
		WatchesRawSource(r.wakers.source(false)).
		WithOptions(attachOpts)
	if attach, err = r.watchSecrets(ctx, mgr, attach, false); err != nil {
		return err
	}
	if err := attach.Complete(r); err != nil {
		return err
	}
	detach := ctrl.NewControllerManagedBy(mgr).
		Named(queue.VolumeAttachmentDetach).
		WatchesRawSource(detachVAs).
		WatchesRawSource(r.wakers.source(true)).
		WithOptions(detachOpts)
	if detach, err = r.watchSecrets(ctx, mgr, detach, true); err != nil {
		return err
	}
	return detach.Complete(r)
}

// followObjects keeps the per-object maps in step with the cache: the
// latency clock starts when an operation first shows up (so the metrics
// include the time spent queued), and every map forgets a VolumeAttachment,
// and the freshness tracker a PersistentVolume, once it is deleted.
func (r *Reconciler) followObjects(c cache.InformerSource) error {
	if err := cache.OnEvents(c, &storagev1.VolumeAttachment{}, r.started.handler(r.DriverName, r.finalizer, func(o client.Object) {
		r.Freshness.ForgetObject(o)
		r.Force.Forget(o)
	})); err != nil {
		return err
	}
	return cache.OnDelete(c, &corev1.PersistentVolume{}, r.Freshness.ForgetObject)
}

// watchSecrets adds the Secret watch to one of the two lanes when
// WatchSecrets is set: each gets the attachments on its side (being deleted
// or not), so a detach waiting for a Secret is retried in the detach lane.
// Both share one metadata-only informer, and join it before its first list
// as the lanes' other watches do (queue.Early).
func (r *Reconciler) watchSecrets(ctx context.Context, mgr ctrl.Manager, b *builder.Builder, deleting bool) (*builder.Builder, error) {
	if !r.WatchSecrets {
		return b, nil
	}
	secrets, err := queue.NewEarly(ctx, mgr.GetCache(), cache.SecretMetadata(),
		handler.EnqueueRequestsFromMapFunc(r.attachmentsUsingSecret(deleting)), secretChanged())
	if err != nil {
		return nil, fmt.Errorf("VolumeAttachment reconciler: %w", err)
	}
	return b.WatchesRawSource(secrets), nil
}

// Reconcile drives one VolumeAttachment of our driver one step towards its
// desired state: attached while it exists, detached once it is deleted.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// On shutdown the Manager cancels ctx, then waits for reconciles to
	// return. An operation already started runs to its end instead (the
	// CSI call is bounded by --timeout, and the grace period covers it, see
	// controllers.ShutdownGracePeriod), so a publish that reached the driver
	// gets its status written rather than being cut off half way. No new
	// call starts.
	ctx = withStop(ctx, r.Fence)
	// A slot of the node this reconcile was woken for and did not take
	// goes to the next waiter when it ends.
	defer r.nodes.settle(req.Name, time.Now())
	unlock := r.locks.lock(req.Name)
	defer unlock()
	if callAllowed(ctx) != nil {
		// This worker waited for the lock while the other side's call ran,
		// and SIGTERM came meanwhile.
		return ctrl.Result{}, nil
	}
	va := &storagev1.VolumeAttachment{}
	fresh, err := r.Freshness.Get(ctx, r.Client, req.NamespacedName, va)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.started.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fresh {
		return recheckStale(), nil
	}
	if va.Spec.Attacher != r.DriverName {
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("Node", klog.KRef("", va.Spec.NodeName)))
	if wait := r.held(va); wait > 0 {
		log.FromContext(ctx).V(2).Info("Waiting before acting: the previous leader lost its Lease without releasing it and may still be calling the driver for this volume",
			"retryAfter", wait.Round(time.Millisecond).String())
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	if va.DeletionTimestamp.IsZero() {
		err = r.reconcileAttach(ctx, va)
	} else {
		err = r.reconcileDetach(ctx, va)
	}
	return r.retryPolicy(ctx, err)
}
