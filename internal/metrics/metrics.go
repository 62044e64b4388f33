package metrics

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi"
)

// Namespace prefixes every metric of this package.
const Namespace = "csi_attacher"

// Full metric names.
const (
	// AttachDurationSeconds is a histogram of the time from a
	// VolumeAttachment's creation to the attacher writing attached=true.
	AttachDurationSeconds = Namespace + "_attach_duration_seconds"
	// DetachDurationSeconds is a histogram of the time from a
	// VolumeAttachment's deletion timestamp to the attacher removing its
	// finalizer.
	DetachDurationSeconds = Namespace + "_detach_duration_seconds"
	// OperationErrorsTotal counts failed attaches and detaches by operation
	// and gRPC code.
	OperationErrorsTotal = Namespace + "_operation_errors_total"
	// VolumeAttachments gauges the driver's VolumeAttachments by state.
	VolumeAttachments = Namespace + "_volumeattachments"
	// DriverReady is 1 while the driver answers Probe with ready, else 0.
	DriverReady = Namespace + "_driver_ready"
	// Ready is 1 while the replica's /readyz checks pass, else 0.
	Ready = Namespace + "_ready"
	// CSIConnectionUp is 1 while the gRPC connection to the driver is up,
	// else 0.
	CSIConnectionUp = Namespace + "_csi_connection_up"
	// DriverOutagesTotal counts the times the driver became unreachable.
	DriverOutagesTotal = Namespace + "_driver_outages_total"
	// VolumeDriftTotal counts the disagreements the ListVolumes
	// reconciliation found between the driver and the VolumeAttachments, by
	// kind.
	VolumeDriftTotal = Namespace + "_volume_drift_total"
	// TrackedObjects gauges the entries of each per-object map the attacher
	// keeps in memory, by map. Each map forgets an object once it is deleted,
	// so these follow the live objects; one that only grows is a leak.
	TrackedObjects = Namespace + "_tracked_objects"
	// OldestPendingSeconds gauges, by operation, the age of the driver's
	// oldest VolumeAttachment whose attach (age since creation) or detach
	// (age since the deletion timestamp) is not done, failing or not; 0
	// when there is none. An attachment that fails forever, retried every
	// --retry-interval-max or, when its objects can never work, not again
	// until they change, shows here as an age that only grows, where an
	// error rate stays too low to alert on.
	OldestPendingSeconds = Namespace + "_oldest_pending_seconds"
	// MaxInflight gauges the adaptive bound of CSI calls in flight
	// (--max-inflight, halved while the driver answers ResourceExhausted).
	MaxInflight = Namespace + "_max_inflight"
	// BuildInfo is 1, with the binary's version, commit, build date and Go
	// version as labels.
	BuildInfo = Namespace + "_build_info"
)

// Label names.
const (
	// LabelDriverName is the constant label on every metric.
	LabelDriverName = "driver_name"
	// LabelOperation is OperationAttach or OperationDetach.
	LabelOperation = "operation"
	// LabelGRPCCode is a gRPC code name such as "DeadlineExceeded", or
	// NoGRPCCode.
	LabelGRPCCode = "grpc_code"
	// LabelState is one of the State* values.
	LabelState = "state"
	// LabelKind is one of the Drift* values.
	LabelKind = "kind"
	// LabelMap names one of the attacher's per-object maps.
	LabelMap = "map"
	// LabelVersion, LabelCommit, LabelBuildDate and LabelGoVersion are the
	// labels of BuildInfo.
	LabelVersion   = "version"
	LabelCommit    = "commit"
	LabelBuildDate = "build_date"
	LabelGoVersion = "go_version"
)

// Values of the operation label.
const (
	OperationAttach = "attach"
	OperationDetach = "detach"
)

// NoGRPCCode is the grpc_code of errors that carry no gRPC status: the
// attacher's own errors, such as a missing PersistentVolume or secret. It
// differs from the grpc_status_code of csi_sidecar_operations_seconds for
// the same case; csi.NoGRPCCode says why.
const NoGRPCCode = csi.NoGRPCCode

// Values of the state label, as returned by State.
const (
	StateAttached  = "attached"
	StateAttaching = "attaching"
	StateDetaching = "detaching"
	StateFailed    = "failed"
)

// Values of the kind label of VolumeDriftTotal.
const (
	// DriftDetachedOutOfBand is a volume whose VolumeAttachment says
	// attached while the driver no longer has it published to the node.
	DriftDetachedOutOfBand = "detached_out_of_band"
	// DriftStillPublished is a volume whose detach is done while the driver
	// still has it published to the node.
	DriftStillPublished = "still_published"
)

// DurationBuckets are the upper bounds, in seconds, of the attach and detach
// histograms: 50 ms to 10 min, each about twice the one before, with round
// values so that alert thresholds (e.g. 30 s, 1 min, 2 min) fall on a bound.
var DurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}

// StateCounter counts the driver's VolumeAttachments by state. It is called
// on every scrape, so it must be cheap (read an informer cache, not the API
// server) and safe for concurrent use. When it returns an error the state
// gauges are left out of that scrape rather than reporting wrong numbers.
type StateCounter func() (attached, attaching, detaching, failed int, err error)

// Snapshot is what the scrape-time gauges of VolumeAttachments export: the
// counts by State and the age of the oldest pending attach and detach.
type Snapshot struct {
	Attached, Attaching, Detaching, Failed int
	// OldestAttach is the age of the oldest VolumeAttachment that is not
	// being deleted and not attached (StateAttaching or StateFailed), since
	// its creation; 0 when there is none.
	OldestAttach time.Duration
	// OldestDetach is the age of the oldest VolumeAttachment being deleted
	// whose detach is not done (StateDetaching or StateFailed), since its
	// deletion timestamp; 0 when there is none.
	OldestDetach time.Duration
}

// SnapshotSource computes a Snapshot of the driver's VolumeAttachments. Like
// a StateCounter it is called on every scrape, must be cheap and safe for
// concurrent use, and an error leaves the gauges out of that scrape.
type SnapshotSource func() (Snapshot, error)

// TrackedCounter returns the number of entries of each per-object map, by
// map name. It is called on every scrape, so it must be cheap and safe for
// concurrent use.
type TrackedCounter func() map[string]int

// Metrics holds the attacher's collectors for one driver. Create it with
// New and register it with Register. All methods are safe for concurrent
// use, and the recording methods do nothing on a nil *Metrics, so a
// reconciler built without metrics (e.g. in tests) needs no checks.
type Metrics struct {
	attach      prometheus.Histogram
	detach      prometheus.Histogram
	errors      *prometheus.CounterVec
	driverReady prometheus.Gauge
	connUp      prometheus.Gauge
	outages     prometheus.Counter
	drift       *prometheus.CounterVec
	states      *stateCollector
	ready       prometheus.GaugeFunc
	// readySource holds the func() error set by SetReadySource.
	readySource atomic.Value
	tracked     *trackedCollector
	// maxInflight and buildInfo are vectors without series until their
	// first Set: nothing is exported before the value is known.
	maxInflight *prometheus.GaugeVec
	buildInfo   *prometheus.GaugeVec

	mu        sync.Mutex // guards connWasUp
	connWasUp bool
}

// New builds the collectors for driver. Nothing is exported until Register.
func New(driver string) *Metrics {
	constLabels := prometheus.Labels{LabelDriverName: driver}
	m := &Metrics{
		attach: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: AttachDurationSeconds,
			Help: "End-to-end attach latency in seconds: from the creation of a VolumeAttachment " +
				"to this attacher writing status.attached=true, retries and queueing included. " +
				"A high p99 means pods wait on volume attachment; compare with " +
				"csi_sidecar_operations_seconds to tell a slow driver from a backlog in the attacher.",
			Buckets:     DurationBuckets,
			ConstLabels: constLabels,
		}),
		detach: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: DetachDurationSeconds,
			Help: "End-to-end detach latency in seconds: from the deletion timestamp of a " +
				"VolumeAttachment to this attacher removing its finalizer. A high p99 means " +
				"volumes stay published to nodes they left and cannot move to a new node.",
			Buckets:     DurationBuckets,
			ConstLabels: constLabels,
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: OperationErrorsTotal,
			Help: "Failed attach and detach attempts, by operation and by the gRPC code the driver " +
				`returned ("none" for the attacher's own errors, such as a missing PersistentVolume, ` +
				"secret or CSINode). A rising rate means volumes are not attaching or detaching; " +
				"the code says whether to look at the driver (e.g. Internal, DeadlineExceeded) " +
				"or at the Kubernetes objects (none).",
			ConstLabels: constLabels,
		}, []string{LabelOperation, LabelGRPCCode}),
		driverReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: DriverReady,
			Help: "1 if the CSI driver's last Probe answered ready, else 0. While 0 the attacher " +
				"cannot attach or detach anything: look at the driver's own logs.",
			ConstLabels: constLabels,
		}),
		connUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: CSIConnectionUp,
			Help: "1 if the gRPC connection to the CSI driver socket is up, else 0. 0 means the " +
				"driver container is down or the --csi-address socket is wrong.",
			ConstLabels: constLabels,
		}),
		outages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: DriverOutagesTotal,
			Help: "Times the connection to the CSI driver went from up to down since the attacher " +
				"started. A steadily rising value means the driver is crash-looping or flapping.",
			ConstLabels: constLabels,
		}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: VolumeDriftTotal,
			Help: "Volumes the ListVolumes reconciliation found in a state the VolumeAttachments " +
				"do not explain, by kind: detached_out_of_band (attached per the API, no longer " +
				"published by the driver; published again) and still_published (detached per " +
				"the API, still published by the driver; unpublished again). Any increase means " +
				"something besides this attacher changes attachments on the backend.",
			ConstLabels: constLabels,
		}, []string{LabelKind}),
		states: &stateCollector{desc: prometheus.NewDesc(VolumeAttachments,
			"VolumeAttachments of this driver by state: attached, attaching (not attached yet, "+
				"no error), detaching (being deleted, detach not finished) and failed (attach "+
				"error and not attached, or detach error while deleting). A growing attaching "+
				"count is a backlog; a non-zero failed count needs a look at the objects' "+
				"status errors (kubectl describe volumeattachment).",
			[]string{LabelState}, constLabels),
			pendingDesc: prometheus.NewDesc(OldestPendingSeconds,
				"Age in seconds of this driver's oldest VolumeAttachment whose attach or detach is "+
					"not done, by operation: for attach the time since the object was created and "+
					"it is still not attached (failing, or waiting for its turn), for detach the "+
					"time since it was deleted and the attacher's finalizer is still on it. 0 when "+
					"none is pending. An attachment that fails forever shows as an age that only "+
					"grows, however seldom it is retried.",
				[]string{LabelOperation}, constLabels)},
		tracked: &trackedCollector{desc: prometheus.NewDesc(TrackedObjects,
			"Entries of each per-object map the attacher keeps in memory (map: freshness, "+
				"force_sync, start_times, locks, node_slots). Each follows the objects in "+
				"flight and drops to 0 when the attacher is idle; a map that only grows is a "+
				"memory leak.",
			[]string{LabelMap}, constLabels)},
	}
	m.maxInflight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MaxInflight,
		Help: "The bound of CSI attach and detach calls in flight at once: --max-inflight, halved " +
			"each time the driver answers ResourceExhausted for calls to several nodes (a cloud " +
			"API throttling the account), and reported again once back at --max-inflight; while " +
			"it climbs back, one call per success, the real bound is at least this value. " +
			"0 means no bound. A value below --max-inflight for long means the driver's backend " +
			"keeps throttling.",
		ConstLabels: constLabels,
	}, nil)
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: BuildInfo,
		Help: "Always 1; the labels say which build of csi-attacher runs: version, commit, " +
			"build_date (set at build time, else read from the Go build's VCS stamp, else " +
			`"unknown") and go_version.`,
		ConstLabels: constLabels,
	}, []string{LabelVersion, LabelCommit, LabelBuildDate, LabelGoVersion})
	m.ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: Ready,
		Help: "1 if this replica's /readyz checks pass (driver reachable and ready, caches " +
			"synced), else 0. A replica whose metrics are scraped but stays at 0 cannot work: " +
			"read /readyz/<check> on its probe port or run csi-attacher doctor.",
		ConstLabels: constLabels,
	}, m.readyValue)
	// Pre-create every error series, so that the first error after a start
	// shows up in rate() and increase() instead of creating a new series.
	for _, op := range []string{OperationAttach, OperationDetach} {
		m.errors.WithLabelValues(op, NoGRPCCode)
		for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
			m.errors.WithLabelValues(op, c.String())
		}
	}
	for _, kind := range []string{DriftDetachedOutOfBand, DriftStillPublished} {
		m.drift.WithLabelValues(kind)
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.attach, m.detach, m.errors, m.driverReady, m.connUp, m.outages, m.drift, m.states, m.ready, m.tracked, m.maxInflight, m.buildInfo}
}

// Register registers every collector with r. It is all or nothing: if one
// collector cannot be registered (e.g. m, or another Metrics, is already
// registered with r) the ones registered by this call are unregistered again
// and the error is returned.
func (m *Metrics) Register(r prometheus.Registerer) error {
	if m == nil {
		return errors.New("metrics: Register called on nil *Metrics")
	}
	if r == nil {
		return errors.New("metrics: nil Registerer")
	}
	cs := m.collectors()
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, done := range cs[:i] {
				r.Unregister(done)
			}
			return fmt.Errorf("registering csi_attacher metrics: %w", err)
		}
	}
	return nil
}

// ObserveAttach records the end-to-end latency of one successful attach:
// from the VolumeAttachment's creation timestamp to the write of
// attached=true. A negative d (clock skew with the API server) counts as 0.
func (m *Metrics) ObserveAttach(d time.Duration) {
	if m == nil {
		return
	}
	m.attach.Observe(seconds(d))
}

// ObserveDetach records the end-to-end latency of one successful detach:
// from the VolumeAttachment's deletion timestamp to the removal of our
// finalizer. A negative d (clock skew with the API server) counts as 0.
func (m *Metrics) ObserveDetach(d time.Duration) {
	if m == nil {
		return
	}
	m.detach.Observe(seconds(d))
}

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// OperationFailed counts one failed attempt of operation (OperationAttach or
// OperationDetach). The grpc_code label is the code of the gRPC status err
// carries, also when err wraps it (fmt.Errorf with %w), and NoGRPCCode when
// it carries none. A nil err counts nothing.
func (m *Metrics) OperationFailed(operation string, err error) {
	if m == nil || err == nil {
		return
	}
	m.errors.WithLabelValues(operation, GRPCCode(err)).Inc()
}

// GRPCCode returns the name of the gRPC code err carries (e.g.
// "DeadlineExceeded"), looking through wrapped errors, or NoGRPCCode when err
// carries no gRPC status. It is the grpc_code label of OperationFailed.
func GRPCCode(err error) string {
	if code, ok := csi.Code(err); ok && err != nil {
		return code.String()
	}
	return NoGRPCCode
}

// VolumeDrift counts one disagreement of kind (DriftDetachedOutOfBand or
// DriftStillPublished) found by the ListVolumes reconciliation.
func (m *Metrics) VolumeDrift(kind string) {
	if m == nil {
		return
	}
	m.drift.WithLabelValues(kind).Inc()
}

// SetReadySource makes csi_attacher_ready read check at every scrape: 1
// when it returns nil. check must be as cheap as a /readyz check. Until it
// is set the gauge is 0.
func (m *Metrics) SetReadySource(check func() error) {
	if m == nil {
		return
	}
	m.readySource.Store(check)
}

func (m *Metrics) readyValue() float64 {
	check, ok := m.readySource.Load().(func() error)
	return boolValue(ok && check() == nil)
}

// SetDriverReady sets csi_attacher_driver_ready to 1 or 0.
func (m *Metrics) SetDriverReady(ready bool) {
	if m == nil {
		return
	}
	m.driverReady.Set(boolValue(ready))
}

// SetConnectionUp sets csi_attacher_csi_connection_up to 1 or 0. Each change
// from up to down counts one outage in csi_attacher_driver_outages_total;
// repeated calls with the same value, and a first call with false, count
// nothing.
func (m *Metrics) SetConnectionUp(up bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connWasUp && !up {
		m.outages.Inc()
	}
	m.connWasUp = up
	m.connUp.Set(boolValue(up))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SetStateSource sets the function the csi_attacher_volumeattachments gauges
// are computed from on every scrape. A StateCounter only counts, so
// csi_attacher_oldest_pending_seconds is not exported; SetSnapshotSource
// gives both. With a nil f (the default) the gauges are not exported.
func (m *Metrics) SetStateSource(f StateCounter) {
	if m == nil {
		return
	}
	if f == nil {
		m.states.source.Store(nil)
		return
	}
	m.states.source.Store(&stateSource{snapshot: func() (Snapshot, error) {
		var s Snapshot
		var err error
		s.Attached, s.Attaching, s.Detaching, s.Failed, err = f()
		return s, err
	}})
}

// SetSnapshotSource sets the function the csi_attacher_volumeattachments
// and csi_attacher_oldest_pending_seconds gauges are computed from on every
// scrape, one pass over the VolumeAttachments for both. With a nil f (the
// default) the gauges are not exported.
func (m *Metrics) SetSnapshotSource(f SnapshotSource) {
	if m == nil {
		return
	}
	if f == nil {
		m.states.source.Store(nil)
		return
	}
	m.states.source.Store(&stateSource{snapshot: f, ages: true})
}

// SetMaxInflight sets csi_attacher_max_inflight, the adaptive bound of CSI
// calls in flight; 0 means no bound. The gauge is not exported before the
// first call.
func (m *Metrics) SetMaxInflight(limit int) {
	if m == nil {
		return
	}
	m.maxInflight.WithLabelValues().Set(float64(max(limit, 0)))
}

// SetBuildInfo sets csi_attacher_build_info to 1 with these labels and the
// Go version the binary was built with; an empty value is "unknown". A
// second call replaces the series of the first.
func (m *Metrics) SetBuildInfo(version, commit, buildDate string) {
	if m == nil {
		return
	}
	orUnknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(orUnknown(version), orUnknown(commit), orUnknown(buildDate), runtime.Version()).Set(1)
}

// SetTrackedSource sets the function the csi_attacher_tracked_objects gauges
// are read from on every scrape. With a nil f (the default) the gauges are
// not exported.
func (m *Metrics) SetTrackedSource(f TrackedCounter) {
	if m == nil {
		return
	}
	if f == nil {
		m.tracked.source.Store(nil)
		return
	}
	m.tracked.source.Store(&f)
}

// trackedCollector exports the map sizes from its TrackedCounter at scrape
// time.
type trackedCollector struct {
	desc   *prometheus.Desc
	source atomic.Pointer[TrackedCounter]
}

func (c *trackedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *trackedCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.source.Load()
	if f == nil {
		return
	}
	for name, n := range (*f)() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name)
	}
}

// stateSource is what SetStateSource and SetSnapshotSource store: ages
// tells whether the snapshot's ages are real (a StateCounter has none).
type stateSource struct {
	snapshot SnapshotSource
	ages     bool
}

// stateCollector exports the state gauges, and the pending ages when its
// source has them, from one call of its source at scrape time.
type stateCollector struct {
	desc        *prometheus.Desc
	pendingDesc *prometheus.Desc
	source      atomic.Pointer[stateSource]
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.pendingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	s, err := src.snapshot()
	if err != nil {
		return
	}
	for _, st := range []struct {
		state string
		n     int
	}{
		{StateAttached, s.Attached},
		{StateAttaching, s.Attaching},
		{StateDetaching, s.Detaching},
		{StateFailed, s.Failed},
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(st.n), st.state)
	}
	if !src.ages {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, seconds(s.OldestAttach), OperationAttach)
	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, seconds(s.OldestDetach), OperationDetach)
}

// State classifies a VolumeAttachment of the driver for the state gauges.
// finalizer is the attacher's finalizer on VolumeAttachments
// (volume.FinalizerName of the driver). In order:
//
//   - being deleted and our finalizer already gone (finalizer non-empty):
//     "", the detach is done and the object only waits for other
//     finalizers; it is not counted;
//   - being deleted with status.detachError set: StateFailed;
//   - being deleted: StateDetaching;
//   - status.attached: StateAttached;
//   - status.attachError set: StateFailed;
//   - otherwise: StateAttaching.
//
// An empty finalizer skips the finalizer check, so every VolumeAttachment
// being deleted counts as detaching or failed.
func State(va *storagev1.VolumeAttachment, finalizer string) string {
	if va.DeletionTimestamp != nil {
		if finalizer != "" && !slices.Contains(va.Finalizers, finalizer) {
			return ""
		}
		if va.Status.DetachError != nil {
			return StateFailed
		}
		return StateDetaching
	}
	if va.Status.Attached {
		return StateAttached
	}
	if va.Status.AttachError != nil {
		return StateFailed
	}
	return StateAttaching
}

// Count tallies vas by State, for use in a StateCounter. Objects for which
// State returns "" are not counted. The caller passes only the driver's
// VolumeAttachments.
func Count(vas []storagev1.VolumeAttachment, finalizer string) (attached, attaching, detaching, failed int) {
	s := Tally(vas, finalizer, time.Time{})
	return s.Attached, s.Attaching, s.Detaching, s.Failed
}

// DriverHealth is what the driver gauges follow; the CSI client implements it.
type DriverHealth interface {
	// Ready is the last Probe's answer.
	Ready() bool
	// ConnectionUp tells whether the gRPC connection is established.
	ConnectionUp() bool
}

// DriverGauges keeps csi_attacher_driver_ready, csi_attacher_csi_connection_up
// and csi_attacher_driver_outages_total current. It is a manager.Runnable
// that runs on every replica, leader or not: a standby's driver matters too.
type DriverGauges struct {
	Metrics  *Metrics
	Driver   DriverHealth
	Interval time.Duration
}

// NeedLeaderElection is false: the gauges are per replica.
func (g DriverGauges) NeedLeaderElection() bool { return false }

// Start samples the driver's health until ctx ends.
func (g DriverGauges) Start(ctx context.Context) error {
	interval := g.Interval
	if interval <= 0 {
		interval = time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		g.Metrics.SetDriverReady(g.Driver.Ready())
		g.Metrics.SetConnectionUp(g.Driver.ConnectionUp())
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
