package metrics

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi"
)

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
