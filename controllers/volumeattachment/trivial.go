package volumeattachment

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/report"
)

// TrivialReconciler serves a driver without PUBLISH_UNPUBLISH_VOLUME: there
// is nothing to call and nothing to undo, so it marks each VolumeAttachment
// of the driver attached, with no finalizer, and leaves deletion to the API
// server.
type TrivialReconciler struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// Recorder emits Events on VolumeAttachments. Optional.
	Recorder events.EventRecorder
	// DriverName is the CSI driver's name.
	DriverName string
	// Workers is the number of workers (--worker-threads).
	Workers int
	// RetryIntervalStart and RetryIntervalMax bound the backoff after a
	// failed status patch.
	RetryIntervalStart, RetryIntervalMax time.Duration
	// Freshness remembers our own writes. Optional.
	Freshness *freshness.Tracker
}

// SetupWithManager validates the configuration and registers the
// controller.
func (r *TrivialReconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("VolumeAttachment reconciler: Client is required")
	case r.DriverName == "":
		return errors.New("VolumeAttachment reconciler: DriverName is required")
	}
	if r.Freshness != nil {
		if err := cache.OnDelete(mgr.GetCache(), &storagev1.VolumeAttachment{}, r.Freshness.ForgetObject); err != nil {
			return fmt.Errorf("VolumeAttachment reconciler: %w", err)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(queue.VolumeAttachment).
		For(&storagev1.VolumeAttachment{}, builder.WithPredicates(ofDriver(r.DriverName), deleting(false), changeMatters())).
		WithOptions(r.options(mgr.GetLogger())).
		Complete(r)
}

// Reconcile marks one VolumeAttachment of the driver attached.
func (r *TrivialReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	va := &storagev1.VolumeAttachment{}
	fresh, err := r.Freshness.Get(ctx, r.Client, req.NamespacedName, va)
	switch {
	case err != nil:
		return ctrl.Result{}, client.IgnoreNotFound(err)
	case !fresh:
		return recheckStale(), nil
	case va.Spec.Attacher != r.DriverName || va.Status.Attached || !va.DeletionTimestamp.IsZero():
		return ctrl.Result{}, nil
	}
	base := va.DeepCopy()
	va.Status.Attached = true
	if err := patchStatus(ctx, r.Client, r.Freshness, va, base); err != nil {
		err = fmt.Errorf("failed to mark VolumeAttachment %s attached: %w", va.Name, err)
		report.Event(r.Recorder, va, corev1.EventTypeWarning, ReasonAttachFailed, "Attach", "%s", report.EventNote(err))
		return ctrl.Result{}, err
	}
	log.FromContext(ctx).V(2).Info("Marked volume attached (driver has no ControllerPublishVolume)", "Node", klog.KRef("", va.Spec.NodeName))
	return ctrl.Result{}, nil
}

func (r *TrivialReconciler) options(logger logr.Logger) controller.Options {
	opts := queue.Options(logger, r.Workers, r.RetryIntervalStart, r.RetryIntervalMax)
	opts.LogConstructor = queue.VolumeAttachmentLogs(logger, queue.VolumeAttachment, r.DriverName)
	return opts
}
