package options

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/logging"
)

// Other defaults that callers may want to refer to.
const (
	// DefaultProbeTimeout is the CSI Probe timeout when CSI_PROBE_TIMEOUT is unset.
	DefaultProbeTimeout = 5 * time.Second
	// MaxVerbosity is the highest accepted --v (logging.MaxVerbosity).
	MaxVerbosity = logging.MaxVerbosity
	// DefaultWorkerThreads is the default --worker-threads. A reconcile
	// holds its worker for the whole CSI call, so the workers bound the
	// calls in flight: with a backend that takes a second per call, 1000
	// volumes need about as many workers to be attached in about a second
	// of driver time. An idle worker is one parked goroutine.
	DefaultWorkerThreads = 1000
	// DefaultMaxInflight is the default --max-inflight: as many calls as
	// the attach and detach lanes have workers, so the bound only bites
	// once the driver throttles.
	DefaultMaxInflight = 2 * DefaultWorkerThreads
	// DefaultTimeout is the default --timeout, the reference's. It bounds
	// each CSI call, and so the graceful shutdown: a call in flight at
	// SIGTERM must end, its result be written and the Lease released
	// within the 30 s a Pod gets by default (controllers.ShutdownGracePeriod).
	DefaultTimeout = 15 * time.Second
	// ListenerOff is the value of --metrics-addr and
	// --health-probe-bind-address that opens no listener, and their default:
	// the containers of a Pod share one network namespace, and a port the
	// attacher took unasked may be the one another container needs.
	ListenerOff = "0"
)

// Log formats accepted by --logging-format and --log-format.
const (
	LogFormatText = logging.FormatText
	LogFormatJSON = logging.FormatJSON
)

// Options holds every setting of the attacher after parsing and validation.
// The comment of each field names the flag or variable it comes from.
type Options struct {
	// CSIAddress is --csi-address, the CSI driver endpoint. Required. Only its
	// presence is checked here; the csi package validates the syntax.
	CSIAddress string
	// Timeout is --timeout (or CSI_ATTACHER_TIMEOUT): the deadline of each
	// ControllerPublish/ControllerUnpublish call and of one ListVolumes pass.
	Timeout time.Duration
	// ProbeTimeout is CSI_PROBE_TIMEOUT: the deadline of each CSI Probe call.
	ProbeTimeout time.Duration
	// RetryIntervalStart is --retry-interval-start (or
	// CSI_ATTACHER_RETRY_INTERVAL_START): the first per-object backoff delay.
	RetryIntervalStart time.Duration
	// RetryIntervalMax is --retry-interval-max: the longest backoff delay.
	RetryIntervalMax time.Duration
	// WorkerThreads is --worker-threads: concurrent reconciles per controller.
	WorkerThreads uint
	// MaxEntries is --max-entries: max_entries of each ListVolumes page, 0 = driver decides.
	MaxEntries int
	// DefaultFSType is --default-fstype: the fsType used when the PV has none.
	DefaultFSType string
	// ReconcileSync is --reconcile-sync: the period of the ListVolumes reconciler.
	ReconcileSync time.Duration
	// MaxGRPCLogLength is --max-grpc-log-length: gRPC responses are logged
	// truncated to this many characters; <= 0 means no limit.
	MaxGRPCLogLength int
	// MaxInflightPerNode is --max-inflight-per-node: the most attach/detach
	// calls in flight for one node at a time; 0 means no limit.
	MaxInflightPerNode int
	// MaxInflight is --max-inflight: the most attach/detach calls in flight
	// in all, lowered while the driver throttles; 0 means no limit.
	MaxInflight int
	// FeatureGates is --feature-gates merged over the defaults. It always
	// holds every known gate; use FeatureEnabled to read it.
	FeatureGates map[string]bool

	// Kubeconfig is --kubeconfig; empty means in-cluster configuration.
	Kubeconfig string
	// KubeAPIQPS is --kube-api-qps as given: 0 = auto (see EffectiveQPS),
	// negative = no client-side rate limiting (client-go semantics).
	KubeAPIQPS float64
	// KubeAPIBurst is --kube-api-burst as given: 0 = auto (see EffectiveBurst).
	KubeAPIBurst int
	// Resync is --resync: the informer resync period.
	Resync time.Duration

	// LeaderElection is --leader-election.
	LeaderElection bool
	// LeaderElectionNamespace is --leader-election-namespace as given.
	LeaderElectionNamespace string
	// LeaderElectionNamespaceResolved is the namespace of the Lease, resolved
	// by Parse: the flag, else $POD_NAMESPACE, else the service-account
	// namespace file, else "default".
	LeaderElectionNamespaceResolved string
	// LeaderElectionLeaseDuration is --leader-election-lease-duration.
	LeaderElectionLeaseDuration time.Duration
	// LeaderElectionRenewDeadline is --leader-election-renew-deadline.
	LeaderElectionRenewDeadline time.Duration
	// LeaderElectionRetryPeriod is --leader-election-retry-period.
	LeaderElectionRetryPeriod time.Duration
	// LeaderElectionLabels is --leader-election-labels: labels put on the Lease.
	LeaderElectionLabels map[string]string

	// MetricsAddr is --metrics-addr: the metrics server address, "0" = off.
	// Replaced by HTTPEndpoint/MetricsAddress when one of those is set.
	MetricsAddr string
	// HealthProbeAddr is --health-probe-bind-address: the /healthz and
	// /readyz server address, "0" = off. Replaced like MetricsAddr.
	HealthProbeAddr string
	// PprofAddr is --pprof-bind-address: Go's /debug/pprof profiles, "0"
	// (the default) = off. For diagnosing CPU and memory use in place.
	PprofAddr string
	// HTTPEndpoint is --http-endpoint: one server for metrics and health.
	HTTPEndpoint string
	// MetricsAddress is --metrics-address, the deprecated alias of HTTPEndpoint.
	MetricsAddress string
	// MetricsPath is --metrics-path: the HTTP path of the metrics handler.
	MetricsPath string

	// AutoMaxProcs is --automaxprocs: set GOMAXPROCS from the cgroup CPU quota.
	AutoMaxProcs bool
	// ShowVersion is --version: print the version and exit. When it is set,
	// Parse skips validation so that it works without --csi-address.
	ShowVersion bool

	// Verbosity is --v (also -v): logr V(n) messages with n <= Verbosity are written.
	Verbosity int
	// VModule is --vmodule. Accepted for compatibility and ignored: zap has
	// no per-file verbosity.
	VModule string
	// LogFormat is --logging-format or its alias --log-format: "text" or "json".
	LogFormat string
	// LogFlushFrequency is --log-flush-frequency. Accepted and ignored: our
	// logger writes synchronously, so there is nothing to flush.
	LogFlushFrequency time.Duration
	// LogTextSplitStream is --log-text-split-stream. Accepted and ignored.
	LogTextSplitStream bool
	// LogJSONSplitStream is --log-json-split-stream. Accepted and ignored.
	LogJSONSplitStream bool
	// LogTextInfoBufferSize is --log-text-info-buffer-size (a quantity).
	// Validated, then ignored.
	LogTextInfoBufferSize string
	// LogJSONInfoBufferSize is --log-json-info-buffer-size (a quantity).
	// Validated, then ignored.
	LogJSONInfoBufferSize string

	// Warnings lists settings that were accepted but are deprecated, ignored
	// or overridden. Parse cannot log (the logger depends on the options), so
	// the caller should log each one once the logger exists.
	Warnings []string
}

// newDefaults returns Options holding every default, before flags are parsed.
func newDefaults() *Options {
	return &Options{
		ProbeTimeout:    DefaultProbeTimeout,
		FeatureGates:    DefaultFeatureGates(),
		LogFormat:       LogFormatText,
		MetricsAddr:     ListenerOff,
		HealthProbeAddr: ListenerOff,
		MetricsPath:     "/metrics",
	}
}

// Parse parses args (without the program name) and the environment into
// validated Options.
//
// getenv and readFile stand for os.Getenv and os.ReadFile; a nil function
// means an empty environment or no files. Flag syntax errors are returned
// wrapped (so errors.Is(err, flag.ErrHelp) works for -h); validation errors
// are joined so that one run reports every problem. Each message names the
// flag or environment variable at fault.
func Parse(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (*Options, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if readFile == nil {
		readFile = func(string) ([]byte, error) { return nil, errors.New("no file system") }
	}

	o := newDefaults()
	fs := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("invalid command line: %w", err)
	}
	// The flag package stops at the first non-flag argument, so anything left
	// over is either a stray word or flags hidden behind one; both are
	// mistakes that would otherwise be silently ignored.
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("invalid command line: unexpected argument %q (flags after it were not parsed)", fs.Arg(0))
	}
	if o.ShowVersion {
		return o, nil
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var errs []error
	errs = append(errs, o.applyEnv(getenv, set)...)
	errs = append(errs, o.validate(set)...)
	if err := o.resolveNamespace(getenv, readFile); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.collectWarnings(getenv, set)
	return o, nil
}
