package drift

import (
	"context"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/csi-attacher/csi-attacher/internal/attachment"
	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/report"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Event reasons of the drift pass.
const (
	ReasonDetachedOutOfBand = "VolumeDetachedOutOfBand"
	ReasonStillPublished    = "VolumeStillPublished"
)

// VolumeLister is the part of the CSI client the drift pass needs: every volume with the node IDs it is published to.
type VolumeLister interface {
	ListVolumes(ctx context.Context, maxEntries int32) (map[string][]string, error)
}

// Pass compares the VolumeAttachments of one driver with what the
// driver itself reports through ListVolumes, and sends the ones that
// disagree back to the VolumeAttachment controller through Force, each
// marked for one forced sync. It never calls ControllerPublish/Unpublish
// itself, so it cannot race the controller's workers. It is a Manager
// runnable, for drivers with LIST_VOLUMES and LIST_VOLUMES_PUBLISHED_NODES.
type Pass struct {
	// Client reads VolumeAttachments from the Manager's cache.
	Client client.Reader
	// Lister is the CSI client; each call is bounded by --timeout.
	Lister VolumeLister
	// Resolver works out which volume and node an attachment stands for,
	// as detach does.
	Resolver *attachment.Resolver
	// Force is the VolumeAttachment controller's queue of forced syncs.
	Force *forcesync.Queue
	// DriverName is the CSI driver's name.
	DriverName string
	// Interval is --reconcile-sync, the pause between two passes.
	Interval time.Duration
	// MaxEntries is --max-entries, the ListVolumes page size.
	MaxEntries int32
	// Recorder emits Events on the VolumeAttachments found drifting.
	// Optional.
	Recorder events.EventRecorder
	// Metrics counts the drift found. Optional.
	Metrics *metrics.Metrics
}

var _ manager.LeaderElectionRunnable = &Pass{}

// NeedLeaderElection: only the leader may act on what it finds.
func (v *Pass) NeedLeaderElection() bool { return true }

// Start runs a pass every Interval until ctx ends. The first pass waits one
// Interval, so it does not race the controllers' first reconciles at start
// up; the next period starts only when a pass is over.
func (v *Pass) Start(ctx context.Context) error {
	if v.Interval <= 0 {
		return errors.New("drift pass: the interval must be positive")
	}
	timer := time.NewTimer(v.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		v.once(ctx)
		timer.Reset(v.Interval)
	}
}

// once runs one comparison. A failure is logged and the next pass tries
// again: the pass must never stop the process.
func (v *Pass) once(ctx context.Context) {
	logger := log.FromContext(ctx).WithName("listvolumes")
	list := &storagev1.VolumeAttachmentList{}
	// Read only (Events and the trigger use names), so no deep copies.
	if err := v.Client.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "Failed to list VolumeAttachments; retrying at the next pass")
		return
	}
	published, err := v.Lister.ListVolumes(ctx, v.MaxEntries)
	if err != nil {
		logger.Error(err, "ListVolumes failed; retrying at the next pass")
		return
	}
	// The response can be huge: log its size, not its content.
	logger.V(4).Info("ListVolumes pass", "volumes", len(published), "volumeAttachments", len(list.Items))
	finalizer := volume.FinalizerName(v.DriverName)
	for i := range list.Items {
		va := &list.Items[i]
		if va.Spec.Attacher != v.DriverName {
			continue
		}
		if err := v.check(ctx, va, finalizer, published); err != nil {
			logger.V(2).Info("Skipping VolumeAttachment in ListVolumes pass", "VolumeAttachment", va.Name, "error", err.Error())
		}
	}
}

// check compares one VolumeAttachment with the driver's view. Only two
// disagreements matter; anything else (a healthy volume, one still being
// attached or detached) is left to the controller, which already owns it.
func (v *Pass) check(ctx context.Context, va *storagev1.VolumeAttachment, finalizer string, published map[string][]string) error {
	deleting := !va.DeletionTimestamp.IsZero()
	ours := controllerutil.ContainsFinalizer(va, finalizer)
	switch {
	case !deleting && ours && va.Status.Attached:
		handle, nodeID, err := v.target(ctx, va, published)
		if err != nil || slices.Contains(published[handle], nodeID) {
			return err
		}
		v.requestSync(ctx, va, forcesync.Publish, handle, nodeID, ReasonDetachedOutOfBand, metrics.DriftDetachedOutOfBand,
			"Volume %s is no longer published to node %s by the driver; publishing it again", handle, va.Spec.NodeName)
	case deleting && !ours:
		// Our detach is done, but another finalizer keeps the object and
		// the driver still has the volume published there.
		handle, nodeID, err := v.target(ctx, va, published)
		if err != nil || !slices.Contains(published[handle], nodeID) {
			return err
		}
		v.requestSync(ctx, va, forcesync.Unpublish, handle, nodeID, ReasonStillPublished, metrics.DriftStillPublished,
			"Volume %s is still published to node %s although the VolumeAttachment is being deleted; unpublishing it", handle, va.Spec.NodeName)
	}
	return nil
}

// requestSync flags the VolumeAttachment for one forced sync of kind,
// reports the drift (log, Event with reason, and the drift counter) and
// queues it in the VolumeAttachment controller. The VolumeAttachment was
// read before ListVolumes answered and may have moved on since (its detach
// may have run); the mark's kind keeps such a finding from driving the
// other operation (see forcesync).
func (v *Pass) requestSync(ctx context.Context, va *storagev1.VolumeAttachment, kind forcesync.Kind, handle, nodeID, reason, metric, note string, args ...any) {
	log.FromContext(ctx).Info("Driver disagrees with the VolumeAttachment; forcing a sync", "reason", reason,
		"VolumeAttachment", va.Name, "volumeHandle", handle, "nodeID", nodeID)
	report.Event(v.Recorder, va, corev1.EventTypeWarning, reason, "Reconcile", note, args...)
	v.Metrics.VolumeDrift(metric)
	v.Force.Mark(ctx, va, kind)
	v.Force.Enqueue(ctx, va)
}

// target is the volume handle and node ID the VolumeAttachment stands for,
// resolved as detach does: the PV from the cache or the inline spec, and
// Resolver.PublishedNodeID.
//
// A translated in-tree volume (or an inline spec of a migration driver) may
// carry a handle the driver completes from the node (GCE PD's project and
// zone); when the driver does not list the handle as we sent it, the
// repaired handle is what it is compared with.
func (v *Pass) target(ctx context.Context, va *storagev1.VolumeAttachment, published map[string][]string) (handle, nodeID string, err error) {
	src, _, err := v.Resolver.Source(ctx, va)
	if err != nil {
		return "", "", err
	}
	if nodeID, err = v.Resolver.PublishedNodeID(ctx, va); err != nil {
		return "", "", err
	}
	handle = src.CSI().VolumeHandle
	if _, listed := published[handle]; listed || !(src.Migrated || src.Inline()) {
		return handle, nodeID, nil
	}
	repaired, err := volume.RepairHandle(v.DriverName, handle, nodeID)
	if err != nil {
		return "", "", err
	}
	return repaired, nodeID, nil
}
