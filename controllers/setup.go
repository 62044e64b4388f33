package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/controllers/drift"
	"github.com/csi-attacher/csi-attacher/controllers/persistentvolume"
	"github.com/csi-attacher/csi-attacher/controllers/volumeattachment"
	"github.com/csi-attacher/csi-attacher/internal/attachment"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

// shutdownMargin is what the graceful shutdown allows beyond one CSI call:
// the API writes that follow the call (status, finalizer, Event) and the
// Manager's own stop sequence. With the default --timeout (15s) the whole
// shutdown, and the Lease release after it, fits the 30 s a Pod gets by
// default before the kubelet kills it.
const shutdownMargin = 10 * time.Second

// ShutdownGracePeriod is how long the Manager waits on SIGTERM for in-flight
// reconciles before it releases the Lease and exits, given --timeout, the
// bound of one CSI call. After SIGTERM no reconcile starts a new call, so
// the longest wait is one call that has just started plus the writes after
// it. Releasing the Lease any sooner would let a standby act on a volume
// whose ControllerPublish is still running here: it could unpublish a
// volume that is not published yet and drop the finalizer, and the publish
// would then complete with no VolumeAttachment left to undo it. The pod's
// terminationGracePeriodSeconds must be longer still.
func ShutdownGracePeriod(csiTimeout time.Duration) time.Duration {
	return csiTimeout + shutdownMargin
}

// maxPVWorkers caps the PersistentVolume lane's workers: a release is one
// cache read and at most one patch, never a CSI call, so more workers would
// only be parked goroutines.
const maxPVWorkers = 100

// Config is what the attacher's controllers need, as main.go builds it from
// the flags and the driver's capabilities.
type Config struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads Secrets directly, so the cache never holds them.
	APIReader client.Reader
	// Recorder emits Events on VolumeAttachments. Optional.
	Recorder events.EventRecorder
	// Attacher is the CSI client shared with the rest of the process.
	Attacher csi.Attacher
	// Lister, when set, runs the drift pass (ListVolumes) every
	// ReconcileSync: for drivers with LIST_VOLUMES and
	// LIST_VOLUMES_PUBLISHED_NODES.
	Lister drift.VolumeLister
	// DriverName is the CSI driver's name (GetPluginInfo).
	DriverName string
	// DefaultFSType is --default-fstype.
	DefaultFSType string
	// PublishReadonly and SingleNodeMultiWriter are the driver's
	// capabilities of those names.
	PublishReadonly, SingleNodeMultiWriter bool
	// Workers is --worker-threads, per controller.
	Workers int
	// RetryIntervalStart and RetryIntervalMax bound the per-object backoff.
	RetryIntervalStart, RetryIntervalMax time.Duration
	// MaxInflightPerNode is --max-inflight-per-node; 0 means no limit.
	MaxInflightPerNode int
	// MaxInflight is --max-inflight, the adaptive bound of CSI calls in
	// flight in all; 0 means no limit.
	MaxInflight int
	// Metrics records the attacher's own metrics. Optional.
	Metrics *metrics.Metrics
	// WatchSecrets turns on the Secret watch (see
	// volumeattachment.Reconciler.WatchSecrets).
	WatchSecrets bool
	// OmitErrorCode leaves errorCode out of attachError and detachError.
	OmitErrorCode bool
	// Fence gates every CSI call on the Lease (leader.Fence); nil without
	// leader election.
	Fence volumeattachment.Fence
	// ReconcileSync is --reconcile-sync and MaxEntries --max-entries, for
	// the drift pass.
	ReconcileSync time.Duration
	MaxEntries    int32
}

// Names of the per-object maps TrackedObjects reports, and the values of the
// map label of csi_attacher_tracked_objects.
const (
	TrackedFreshness  = "freshness"
	TrackedForceSync  = "force_sync"
	TrackedStartTimes = "start_times"
	TrackedLocks      = "locks"
	TrackedNodeSlots  = "node_slots"
)

// Full is the attacher of a driver with ControllerPublishVolume: the
// VolumeAttachment controller (attach and detach lanes), the
// PersistentVolume controller, and the drift pass when the driver can list
// its volumes. They share one freshness tracker and one forced-sync queue.
type Full struct {
	va    *volumeattachment.Reconciler
	fresh *freshness.Tracker
	force *forcesync.Queue
}

// SetupFull registers the field indexes and the controllers of a driver
// with ControllerPublishVolume on mgr.
func SetupFull(ctx context.Context, mgr ctrl.Manager, cfg Config) (*Full, error) {
	if cfg.Attacher == nil {
		return nil, errors.New("a driver with ControllerPublishVolume needs the CSI client")
	}
	if err := cache.SetupIndexes(ctx, mgr.GetFieldIndexer(), cfg.DriverName); err != nil {
		return nil, fmt.Errorf("failed to register field indexes: %w", err)
	}
	f := &Full{fresh: freshness.New(), force: forcesync.New(mgr.GetClient())}
	resolver := &attachment.Resolver{
		Client:                cfg.Client,
		APIReader:             cfg.APIReader,
		Freshness:             f.fresh,
		DriverName:            cfg.DriverName,
		DefaultFSType:         cfg.DefaultFSType,
		PublishReadonly:       cfg.PublishReadonly,
		SingleNodeMultiWriter: cfg.SingleNodeMultiWriter,
	}
	f.va = &volumeattachment.Reconciler{
		Client:             cfg.Client,
		Resolver:           resolver,
		Attacher:           cfg.Attacher,
		Recorder:           cfg.Recorder,
		DriverName:         cfg.DriverName,
		Workers:            cfg.Workers,
		RetryIntervalStart: cfg.RetryIntervalStart,
		RetryIntervalMax:   cfg.RetryIntervalMax,
		Freshness:          f.fresh,
		Force:              f.force,
		MaxInflightPerNode: cfg.MaxInflightPerNode,
		MaxInflight:        cfg.MaxInflight,
		Metrics:            cfg.Metrics,
		WatchSecrets:       cfg.WatchSecrets,
		OmitErrorCode:      cfg.OmitErrorCode,
		Fence:              cfg.Fence,
	}
	if err := f.va.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the VolumeAttachment controller: %w", err)
	}
	if err := (&persistentvolume.Reconciler{
		Client:             cfg.Client,
		DriverName:         cfg.DriverName,
		Workers:            min(cfg.Workers, maxPVWorkers),
		RetryIntervalStart: cfg.RetryIntervalStart,
		RetryIntervalMax:   cfg.RetryIntervalMax,
		Freshness:          f.fresh,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the PersistentVolume controller: %w", err)
	}
	if cfg.Lister != nil {
		if err := mgr.Add(&drift.Pass{
			Client:     cfg.Client,
			Lister:     cfg.Lister,
			Resolver:   resolver,
			Force:      f.force,
			DriverName: cfg.DriverName,
			Interval:   cfg.ReconcileSync,
			MaxEntries: cfg.MaxEntries,
			Recorder:   cfg.Recorder,
			Metrics:    cfg.Metrics,
		}); err != nil {
			return nil, fmt.Errorf("failed to set up the ListVolumes drift pass: %w", err)
		}
	}
	cfg.Metrics.SetTrackedSource(f.TrackedObjects)
	return f, nil
}

// RetryFailed queues every VolumeAttachment whose last attempt failed; it
// is the CSI health monitor's OnRecovered hook.
func (f *Full) RetryFailed(ctx context.Context) { f.va.RetryFailed(ctx) }

// TrackedObjects returns the number of entries in each per-object map the
// attacher keeps in memory, by name. Every one of them forgets an object
// once it is deleted (or once its operation is over), so in an idle
// attacher they are all 0 however many objects came and went. The
// freshness tracker is shared by both controllers, so it counts both kinds.
func (f *Full) TrackedObjects() map[string]int {
	locks, slots, starts := f.va.Tracked()
	return map[string]int{
		TrackedFreshness:  f.fresh.Len(),
		TrackedForceSync:  f.force.Len(),
		TrackedStartTimes: starts,
		TrackedLocks:      locks,
		TrackedNodeSlots:  slots,
	}
}

// SetupTrivial registers the field indexes and the one controller of a
// driver without ControllerPublishVolume, which only marks attachments
// attached: no CSI call, no finalizer, no Secrets, nothing to detach.
func SetupTrivial(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := cache.SetupIndexes(ctx, mgr.GetFieldIndexer(), cfg.DriverName); err != nil {
		return fmt.Errorf("failed to register field indexes: %w", err)
	}
	fresh := freshness.New()
	if err := (&volumeattachment.TrivialReconciler{
		Client:             cfg.Client,
		Recorder:           cfg.Recorder,
		DriverName:         cfg.DriverName,
		Workers:            cfg.Workers,
		RetryIntervalStart: cfg.RetryIntervalStart,
		RetryIntervalMax:   cfg.RetryIntervalMax,
		Freshness:          fresh,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the VolumeAttachment controller: %w", err)
	}
	// Only the freshness tracker exists here; the gauge keeps every name.
	cfg.Metrics.SetTrackedSource(func() map[string]int {
		return map[string]int{TrackedFreshness: fresh.Len(), TrackedForceSync: 0, TrackedStartTimes: 0, TrackedLocks: 0, TrackedNodeSlots: 0}
	})
	return nil
}
