package metrics

import "github.com/csi-attacher/csi-attacher/internal/csi"

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
