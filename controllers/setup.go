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
// the flags; what runs is the Plan's.
type Config struct {
	// Client reads from the Manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads Secrets directly, so the cache never holds them.
	APIReader client.Reader
	// Recorder emits Events on VolumeAttachments. Optional.
	Recorder events.EventRecorder
	// Attacher is the CSI client shared with the rest of the process.
	Attacher csi.Attacher
	// Lister is the driver's ListVolumes, for the drift pass when the Plan
	// runs it.
	Lister drift.VolumeLister
	// DriverName is the CSI driver's name (GetPluginInfo).
	DriverName string
	// DefaultFSType is --default-fstype.
	DefaultFSType string
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
	// OmitErrorCode leaves errorCode out of attachError and detachError.
	OmitErrorCode bool
	// Fence gates every CSI call on the Lease (leader.Fence); nil without
	// leader election.
	Fence volumeattachment.Fence
	// ReconcileSync is --reconcile-sync and MaxEntries --max-entries, for
	// the drift pass. A zero ReconcileSync leaves the pass out whatever the
	// Plan says; the flag only takes a positive period, so this is for
	// tests that must not see the pass.
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

// Attacher is what Setup registered on the Manager. For a driver with
// ControllerPublishVolume: the VolumeAttachment controller (attach and
// detach lanes), the PersistentVolume controller, and the drift pass when
// the Plan runs it, sharing one freshness tracker and one forced-sync
// queue. For a trivial driver: the one controller that marks attachments
// attached.
type Attacher struct {
	va    *volumeattachment.Reconciler // nil in trivial mode
	fresh *freshness.Tracker
	force *forcesync.Queue // nil in trivial mode
}

// Setup registers the field indexes and the controllers of plan on mgr: the
// one place that turns a Plan into running controllers.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config, plan Plan) (*Attacher, error) {
	if err := cache.SetupIndexes(ctx, mgr.GetFieldIndexer(), cfg.DriverName); err != nil {
		return nil, fmt.Errorf("failed to register field indexes: %w", err)
	}
	var a *Attacher
	var err error
	if plan.Mode == ModeTrivial {
		a, err = setupTrivial(mgr, cfg)
	} else {
		a, err = setupFull(ctx, mgr, cfg, plan)
	}
	if err != nil {
		return nil, err
	}
	cfg.Metrics.SetTrackedSource(a.TrackedObjects)
	return a, nil
}

// setupFull registers the controllers of a driver with
// ControllerPublishVolume.
func setupFull(ctx context.Context, mgr ctrl.Manager, cfg Config, plan Plan) (*Attacher, error) {
	if cfg.Attacher == nil {
		return nil, errors.New("a driver with ControllerPublishVolume needs the CSI client")
	}
	if plan.Drift && cfg.ReconcileSync > 0 && cfg.Lister == nil {
		return nil, errors.New("the drift pass needs the driver's ListVolumes")
	}
	f := &Attacher{fresh: freshness.New(), force: forcesync.New(mgr.GetClient())}
	resolver := &attachment.Resolver{
		Client:                cfg.Client,
		APIReader:             cfg.APIReader,
		Freshness:             f.fresh,
		DriverName:            cfg.DriverName,
		DefaultFSType:         cfg.DefaultFSType,
		PublishReadonly:       plan.Capabilities.PublishReadonly,
		SingleNodeMultiWriter: plan.Capabilities.SingleNodeMultiWriter,
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
		WatchSecrets:       plan.SecretWatch,
		OmitErrorCode:      cfg.OmitErrorCode,
		Fence:              cfg.Fence,
	}
	if err := f.va.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the VolumeAttachment controller: %w", err)
	}
	if err := (&persistentvolume.Reconciler{
		Client:             cfg.Client,
		DriverName:         cfg.DriverName,
		Workers:            min(cfg.Workers, maxPVWorkers),
		RetryIntervalStart: cfg.RetryIntervalStart,
		RetryIntervalMax:   cfg.RetryIntervalMax,
		Freshness:          f.fresh,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the PersistentVolume controller: %w", err)
	}
	if plan.Drift && cfg.ReconcileSync > 0 {
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
	return f, nil
}

// setupTrivial registers the one controller of a driver without
// ControllerPublishVolume, which only marks attachments attached: no CSI
// call, no finalizer, no Secrets, nothing to detach.
func setupTrivial(mgr ctrl.Manager, cfg Config) (*Attacher, error) {
	a := &Attacher{fresh: freshness.New()}
	if err := (&volumeattachment.TrivialReconciler{
		Client:             cfg.Client,
		Recorder:           cfg.Recorder,
		DriverName:         cfg.DriverName,
		Workers:            cfg.Workers,
		RetryIntervalStart: cfg.RetryIntervalStart,
		RetryIntervalMax:   cfg.RetryIntervalMax,
		Freshness:          a.fresh,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the VolumeAttachment controller: %w", err)
	}
	return a, nil
}

// RetryFailed queues every VolumeAttachment whose last attempt failed; it
// is the CSI health monitor's OnRecovered hook. A trivial driver has no
// call to retry.
func (a *Attacher) RetryFailed(ctx context.Context) {
	if a.va != nil {
		a.va.RetryFailed(ctx)
	}
}

// TrackedObjects returns the number of entries in each per-object map the
// attacher keeps in memory, by name. Every one of them forgets an object
// once it is deleted (or once its operation is over), so in an idle
// attacher they are all 0 however many objects came and went. The
// freshness tracker is shared by both controllers, so it counts both kinds.
// In trivial mode only the freshness tracker exists; the gauge keeps every
// name.
func (a *Attacher) TrackedObjects() map[string]int {
	out := map[string]int{TrackedFreshness: a.fresh.Len(), TrackedForceSync: 0, TrackedStartTimes: 0, TrackedLocks: 0, TrackedNodeSlots: 0}
	if a.va != nil {
		locks, slots, starts := a.va.Tracked()
		out[TrackedForceSync], out[TrackedStartTimes], out[TrackedLocks], out[TrackedNodeSlots] = a.force.Len(), starts, locks, slots
	}
	return out
}
