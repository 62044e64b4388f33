package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Event reasons of the ListVolumes reconciler.
const (
	ReasonDetachedOutOfBand = "VolumeDetachedOutOfBand"
	ReasonStillPublished    = "VolumeStillPublished"
)

// triggerBuffer lets a pass queue many VolumeAttachments without waiting
// for the controller to drain each one.
const triggerBuffer = 128

// VolumeLister is the part of the CSI client the ListVolumes reconciler
// needs: every volume with the node IDs it is published to.
type VolumeLister interface {
	ListVolumes(ctx context.Context, maxEntries int32) (map[string][]string, error)
}

// forceSync remembers the VolumeAttachments whose next reconcile must call
// the driver even though their state looks settled: the driver disagrees
// with the API. Each flag is used once. Flags are keyed by UID, not name: a
// flag left by a VolumeAttachment deleted before its reconcile must never
// make a later one of the same name call the driver.
type forceSync struct {
	mu   sync.Mutex
	uids map[types.UID]bool
}

func newForceSync() *forceSync { return &forceSync{uids: map[types.UID]bool{}} }

func (f *forceSync) mark(uid types.UID) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uids[uid] = true
}

// consume reports whether uid was marked, and clears the mark.
func (f *forceSync) consume(uid types.UID) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	marked := f.uids[uid]
	delete(f.uids, uid)
	return marked
}

// len is the number of flags not consumed yet.
func (f *forceSync) len() int {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uids)
}

// forceSync flags va for one forced sync. A flag for an object the cache
// no longer holds is taken back at once (see stillCached): its reconcile
// finds nothing and would never consume it.
func (r *VolumeAttachmentReconciler) forceSync(ctx context.Context, va *storagev1.VolumeAttachment) {
	r.force.mark(va.UID)
	if !stillCached(ctx, r.Client, va) {
		r.force.consume(va.UID)
	}
}

// volumeReconciler compares the VolumeAttachments of one driver with what
// the driver itself reports through ListVolumes, and sends the ones that
// disagree back to the VolumeAttachment controller with a force flag. It
// never calls ControllerPublish/Unpublish itself, so it cannot race the
// controller's workers. VolumeAttachmentReconciler.VolumeReconciler builds it.
type volumeReconciler struct {
	// lister is the CSI client; each call is bounded by --timeout.
	lister VolumeLister
	// interval is --reconcile-sync, the pause between two passes.
	interval time.Duration
	// maxEntries is --max-entries, the ListVolumes page size.
	maxEntries int32
	// r is the controller it reports to; its cache, driver name, recorder,
	// metrics and source lookups are the ones attach and detach use.
	r *VolumeAttachmentReconciler
}

var _ manager.LeaderElectionRunnable = &volumeReconciler{}

// NeedLeaderElection: only the leader may act on what it finds.
func (v *volumeReconciler) NeedLeaderElection() bool { return true }

// Start runs a pass every Interval until ctx ends. The first pass waits one
// Interval, so it does not race the controllers' first reconciles at start
// up; the next period starts only when a pass is over.
func (v *volumeReconciler) Start(ctx context.Context) error {
	if v.interval <= 0 {
		return errors.New("ListVolumes reconciler: the interval must be positive")
	}
	timer := time.NewTimer(v.interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		v.pass(ctx)
		timer.Reset(v.interval)
	}
}

// pass runs one comparison. A failure is logged and the next pass tries
// again: the reconciler must never stop the process.
func (v *volumeReconciler) pass(ctx context.Context) {
	logger := log.FromContext(ctx).WithName("listvolumes")
	list := &storagev1.VolumeAttachmentList{}
	// Read only (Events and the trigger use names), so no deep copies.
	if err := v.r.Client.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "Failed to list VolumeAttachments; retrying at the next pass")
		return
	}
	published, err := v.lister.ListVolumes(ctx, v.maxEntries)
	if err != nil {
		logger.Error(err, "ListVolumes failed; retrying at the next pass")
		return
	}
	// The response can be huge: log its size, not its content.
	logger.V(4).Info("ListVolumes pass", "volumes", len(published), "volumeAttachments", len(list.Items))
	for i := range list.Items {
		va := &list.Items[i]
		if va.Spec.Attacher != v.r.DriverName {
			continue
		}
		if err := v.check(ctx, va, published); err != nil {
			logger.V(2).Info("Skipping VolumeAttachment in ListVolumes pass", "VolumeAttachment", va.Name, "error", err.Error())
		}
	}
}

// check compares one VolumeAttachment with the driver's view. Only two
// disagreements matter; anything else (a healthy volume, one still being
// attached or detached) is left to the controller, which already owns it.
func (v *volumeReconciler) check(ctx context.Context, va *storagev1.VolumeAttachment, published map[string][]string) error {
	deleting := !va.DeletionTimestamp.IsZero()
	ours := hasFinalizer(va, v.r.finalizer)
	switch {
	case !deleting && ours && va.Status.Attached:
		handle, nodeID, err := v.target(ctx, va, published)
		if err != nil || slices.Contains(published[handle], nodeID) {
			return err
		}
		v.requestSync(ctx, va, handle, nodeID, ReasonDetachedOutOfBand, metrics.DriftDetachedOutOfBand,
			"Volume %s is no longer published to node %s by the driver; publishing it again", handle, va.Spec.NodeName)
	case deleting && !ours:
		// Our detach is done, but another finalizer keeps the object and
		// the driver still has the volume published there.
		handle, nodeID, err := v.target(ctx, va, published)
		if err != nil || !slices.Contains(published[handle], nodeID) {
			return err
		}
		v.requestSync(ctx, va, handle, nodeID, ReasonStillPublished, metrics.DriftStillPublished,
			"Volume %s is still published to node %s although the VolumeAttachment is being deleted; unpublishing it", handle, va.Spec.NodeName)
	}
	return nil
}

// requestSync flags the VolumeAttachment for one forced sync, reports the
// drift (log, Event with reason, and the drift counter with kind) and queues
// it in the VolumeAttachment controller.
func (v *volumeReconciler) requestSync(ctx context.Context, va *storagev1.VolumeAttachment, handle, nodeID, reason, kind, note string, args ...any) {
	log.FromContext(ctx).Info("Driver disagrees with the VolumeAttachment; forcing a sync", "reason", reason,
		"VolumeAttachment", va.Name, "volumeHandle", handle, "nodeID", nodeID)
	recordEvent(v.r.Recorder, va, corev1.EventTypeWarning, reason, "Reconcile", note, args...)
	v.r.Metrics.VolumeDrift(kind)
	v.r.forceSync(ctx, va)
	select {
	case v.r.trigger <- event.GenericEvent{Object: va}:
	case <-ctx.Done():
	}
}

// target is the volume handle and node ID the VolumeAttachment stands for,
// resolved as detach does: the PV from the cache or the inline spec, and
// publishedNodeID.
//
// A translated in-tree volume (or an inline spec of a migration driver) may
// carry a handle the driver completes from the node (GCE PD's project and
// zone); when the driver does not list the handle as we sent it, the
// repaired handle is what it is compared with.
func (v *volumeReconciler) target(ctx context.Context, va *storagev1.VolumeAttachment, published map[string][]string) (handle, nodeID string, err error) {
	src, _, err := v.r.source(ctx, va)
	if err != nil {
		return "", "", err
	}
	if nodeID, err = v.r.publishedNodeID(ctx, va); err != nil {
		return "", "", err
	}
	handle = src.CSI().VolumeHandle
	if _, listed := published[handle]; listed || !(src.Migrated || src.Inline()) {
		return handle, nodeID, nil
	}
	repaired, err := volume.RepairHandle(v.r.DriverName, handle, nodeID)
	if err != nil {
		return "", "", err
	}
	return repaired, nodeID, nil
}

// VolumeReconciler builds the ListVolumes reconciler wired to this
// controller, for a driver with LIST_VOLUMES and
// LIST_VOLUMES_PUBLISHED_NODES. It returns nil for a trivial driver, or
// before SetupWithManager, when there is nothing to send its findings to.
func (r *VolumeAttachmentReconciler) VolumeReconciler(lister VolumeLister, interval time.Duration, maxEntries int32) manager.Runnable {
	if r.Trivial || r.trigger == nil || lister == nil {
		return nil
	}
	return &volumeReconciler{lister: lister, interval: interval, maxEntries: maxEntries, r: r}
}
