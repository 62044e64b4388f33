package persistentvolume

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/go-logr/logr"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/patch"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Reconciler releases PersistentVolumes: it removes our
// finalizer from a PersistentVolume that is being deleted, or from an
// in-tree PersistentVolume whose CSI migration was rolled back, once no
// VolumeAttachment refers to it any more.
type Reconciler struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// DriverName is the CSI driver's name; it names our finalizer.
	DriverName string
	// Workers is the number of workers (--worker-threads).
	Workers int
	// RetryIntervalStart and RetryIntervalMax bound the backoff after a
	// failed patch.
	RetryIntervalStart, RetryIntervalMax time.Duration
	// Freshness is shared with the VolumeAttachment reconciler so neither
	// acts on a copy older than the other's writes. Optional.
	Freshness *freshness.Tracker

	finalizer string
}

// SetupWithManager validates the configuration and registers the
// controller. cache.SetupIndexes must have been called on the Manager first,
// and the Manager must not have started: the controller's watches join the
// informers before their first list (queue.Early). ctx bounds those watches.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("PersistentVolume reconciler: Client is required")
	case r.DriverName == "":
		return errors.New("PersistentVolume reconciler: DriverName is required")
	}
	r.finalizer = volume.FinalizerName(r.DriverName)
	if r.Freshness == nil {
		r.Freshness = freshness.New()
	}
	// The tracker may be shared with the VolumeAttachment reconciler, which
	// forgets deleted PVs too; forgetting twice is harmless.
	if err := cache.OnDelete(mgr.GetCache(), &corev1.PersistentVolume{}, r.Freshness.ForgetObject); err != nil {
		return fmt.Errorf("PersistentVolume reconciler: %w", err)
	}
	pvs, err := queue.NewEarly(ctx, mgr.GetCache(), &corev1.PersistentVolume{}, &handler.EnqueueRequestForObject{},
		toRelease(r.finalizer, r.DriverName))
	if err != nil {
		return fmt.Errorf("PersistentVolume reconciler: %w", err)
	}
	// A VolumeAttachment going away is what releases a PV.
	releases, err := queue.NewEarly(ctx, mgr.GetCache(), &storagev1.VolumeAttachment{}, handler.EnqueueRequestsFromMapFunc(r.releasedBy),
		predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})
	if err != nil {
		return fmt.Errorf("PersistentVolume reconciler: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(queue.PersistentVolume).
		WatchesRawSource(pvs).
		WatchesRawSource(releases).
		WithOptions(r.options(mgr.GetLogger())).
		Complete(r)
}

// Reconcile removes our finalizer from one PersistentVolume when it is being
// deleted, or no longer migrated to our driver, and no VolumeAttachment, of
// any driver, still names it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pv := &corev1.PersistentVolume{}
	fresh, err := r.Freshness.Get(ctx, r.Client, req.NamespacedName, pv)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fresh {
		// Older than our own last write: nothing is decided on it, and it
		// is looked at again shortly, quietly, as the VolumeAttachment
		// lanes do with a stale VolumeAttachment or PV (their retry.go).
		return ctrl.Result{RequeueAfter: queue.StaleRecheck}, nil
	}
	if !controllerutil.ContainsFinalizer(pv, r.finalizer) {
		return ctrl.Result{}, nil
	}
	// A rollback of CSI migration hands the volume back to its in-tree
	// plugin, which knows nothing of our finalizer: without this it would
	// stay until the PV is deleted, and block that deletion if we are gone.
	rolledBack := volume.MigrationRolledBack(pv, r.DriverName)
	if pv.DeletionTimestamp.IsZero() && !rolledBack {
		return ctrl.Result{}, nil
	}
	vas := &storagev1.VolumeAttachmentList{}
	if err := r.Client.List(ctx, vas, client.MatchingFields{cache.IndexVAByPV: pv.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to list VolumeAttachments of PersistentVolume %q: %w", pv.Name, err)
	}
	if len(vas.Items) > 0 {
		log.FromContext(ctx).V(4).Info("Keeping finalizer: PersistentVolume still in use", "VolumeAttachment", vas.Items[0].Name)
		return ctrl.Result{}, nil
	}
	if err := r.Freshness.Patch(ctx, r.Client, pv, patch.RemoveFinalizer(pv.Finalizers, r.finalizer)); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("could not remove finalizer from PersistentVolume %q: %w", pv.Name, err)
	}
	log.FromContext(ctx).V(2).Info("Released PersistentVolume", "migrationRolledBack", rolledBack)
	return ctrl.Result{}, nil
}

// toRelease passes the PersistentVolumes Reconcile may release: with our
// finalizer, and being deleted or no longer migrated to driver. The others,
// every attached volume of the driver among them, would only be read and
// left as they are: after a restart in a cluster of 100 000 volumes that
// was 100 000 reconciles, and one more each time we add our finalizer. A
// PV that becomes one to release comes back with that update; a
// VolumeAttachment going away queues its PV only if it waits too (releasedBy).
func toRelease(finalizer, driver string) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		pv, ok := o.(*corev1.PersistentVolume)
		return ok && waitsForRelease(pv, finalizer, driver)
	})
}

// waitsForRelease tells whether Reconcile may release pv once no
// VolumeAttachment names it: our finalizer, and being deleted or no longer
// migrated to driver.
func waitsForRelease(pv *corev1.PersistentVolume, finalizer, driver string) bool {
	if !controllerutil.ContainsFinalizer(pv, finalizer) {
		return false
	}
	return !pv.DeletionTimestamp.IsZero() || volume.MigrationRolledBack(pv, driver)
}

// releasedBy maps a VolumeAttachment that went away to the
// PersistentVolume it names, when that PV waits to be released (toRelease,
// read from the cache). The PV of an ordinary detach is not being deleted:
// queuing it would only read it and leave it, one reconcile per detach. No
// release is missed: a PV event not yet delivered queues the PV itself
// (toRelease passes it), and its reconcile then finds the VolumeAttachment
// gone, since the informer removed it from the cache before this handler
// ran. A PV not cached yet is queued by its own creation the same way.
func (r *Reconciler) releasedBy(ctx context.Context, o client.Object) []reconcile.Request {
	names := cache.PVOf(o)
	if len(names) == 0 {
		return nil
	}
	pv := &corev1.PersistentVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: names[0]}, pv, client.UnsafeDisableDeepCopy); err != nil {
		// Not cached: its own creation queues it. Any other error: queue
		// it anyway and let the reconcile decide.
		if apierrors.IsNotFound(err) {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: names[0]}}}
	}
	if !waitsForRelease(pv, r.finalizer, r.DriverName) {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: names[0]}}}
}

func (r *Reconciler) options(logger logr.Logger) controller.Options {
	opts := queue.Options(logger, r.Workers, r.RetryIntervalStart, r.RetryIntervalMax)
	opts.LogConstructor = queue.PersistentVolumeLogs(logger, queue.PersistentVolume, r.DriverName)
	return opts
}
