package options

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Feature gate names accepted by --feature-gates. They are the reference
// attacher's gates, so its manifests parse unchanged.
const (
	// FeatureMutableCSINodeAllocatableCount fills errorCode in
	// status.attachError and detachError with the gRPC code of the failed
	// CSI call. GA upstream, on by default; off leaves errorCode out.
	FeatureMutableCSINodeAllocatableCount = "MutableCSINodeAllocatableCount"
	// FeatureReleaseLeaderElectionOnExit releases the leader-election Lease on
	// SIGTERM/SIGINT after in-flight work has finished, so a standby takes
	// over at once. Alpha and off upstream; on here, because a prompt
	// hand-over is part of the product. Off leaves the Lease to expire, as
	// the reference does by default.
	FeatureReleaseLeaderElectionOnExit = "ReleaseLeaderElectionOnExit"
)

// Automatic Kubernetes client limits, used when --kube-api-qps or
// --kube-api-burst is 0. They are deliberately far above client-go's 5/10:
// the API server's Priority and Fairness already shares capacity between
// clients, and a client-side token bucket would only make a large attach
// storm wait on the attacher itself.
const (
	AutoKubeAPIQPS   float32 = 1000
	AutoKubeAPIBurst int     = 2000
)

// Other defaults that callers may want to refer to.
const (
	// DefaultProbeTimeout is the CSI Probe timeout when CSI_PROBE_TIMEOUT is unset.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultLeaderElectionNamespace is the last resort of the namespace lookup.
	DefaultLeaderElectionNamespace = "default"
	// ServiceAccountNamespaceFile holds the pod's namespace inside a cluster.
	ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
	// MaxVerbosity is the highest accepted --v. Nothing in the attacher logs
	// above it, and a cap keeps typos such as --v=50 from going unnoticed.
	MaxVerbosity = 10
)

// Log formats accepted by --logging-format and --log-format.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Environment variables read by Parse.
const (
	EnvTimeout            = "CSI_ATTACHER_TIMEOUT"
	EnvRetryIntervalStart = "CSI_ATTACHER_RETRY_INTERVAL_START"
	EnvProbeTimeout       = "CSI_PROBE_TIMEOUT"
	EnvPodNamespace       = "POD_NAMESPACE"
)

// Paths served by the single diagnostics server of --http-endpoint. The
// metrics path must not collide with them.
var healthPaths = []string{"/healthz", "/readyz", "/healthz/leader-election"}

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
	// namespace file, else "default". Read it via LeaderElectionNamespaceOrDefault.
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

// DefaultFeatureGates returns a new map with every known feature gate at its
// default value.
func DefaultFeatureGates() map[string]bool {
	return map[string]bool{
		FeatureMutableCSINodeAllocatableCount: true,
		FeatureReleaseLeaderElectionOnExit:    true,
	}
}

// newDefaults returns Options holding every default, before flags are parsed.
func newDefaults() *Options {
	return &Options{
		ProbeTimeout:    DefaultProbeTimeout,
		FeatureGates:    DefaultFeatureGates(),
		LogFormat:       LogFormatText,
		MetricsAddr:     ":8080",
		HealthProbeAddr: ":8081",
		MetricsPath:     "/metrics",
	}
}

// logFormatFlags are the two names of the log format flag. Both are kept:
// --logging-format is the reference's (component-base) name, --log-format
// the product's.
const (
	flagLoggingFormat = "logging-format"
	flagLogFormat     = "log-format"
)

// register defines every flag on fs, storing into o. The defaults are the
// product defaults (see the package documentation).
func (o *Options) register(fs *flag.FlagSet) {
	// CSI.
	fs.StringVar(&o.CSIAddress, "csi-address", "",
		"Address of the CSI driver socket: /path, unix:///path or tcp://host:port. Required.")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute,
		"Timeout of each ControllerPublish/ControllerUnpublish call and of one ListVolumes pass. Overrides "+EnvTimeout+".")
	fs.DurationVar(&o.RetryIntervalStart, "retry-interval-start", time.Second,
		"Initial retry delay of a failed attach or detach; it doubles on each failure up to --retry-interval-max. Overrides "+EnvRetryIntervalStart+".")
	fs.DurationVar(&o.RetryIntervalMax, "retry-interval-max", 30*time.Second,
		"Maximum retry delay of a failed attach or detach.")
	fs.UintVar(&o.WorkerThreads, "worker-threads", 100,
		"Number of concurrent reconciles for VolumeAttachments, and again for PersistentVolumes. Must be at least 1.")
	fs.IntVar(&o.MaxEntries, "max-entries", 0,
		"max_entries of each ListVolumes page; 0 lets the driver decide.")
	fs.StringVar(&o.DefaultFSType, "default-fstype", "",
		"fsType passed to the driver when the PersistentVolume does not set one.")
	fs.DurationVar(&o.ReconcileSync, "reconcile-sync", time.Minute,
		"Period of the ListVolumes reconciler (used only when the driver lists published nodes).")
	fs.IntVar(&o.MaxGRPCLogLength, "max-grpc-log-length", -1,
		"Truncate logged gRPC responses to this many characters; 0 or less means no limit.")
	fs.IntVar(&o.MaxInflightPerNode, "max-inflight-per-node", 0,
		"Maximum attach/detach calls in flight for one node; 0 means no limit.")
	fs.Var(&featureGatesValue{m: &o.FeatureGates}, "feature-gates",
		"Comma-separated `key=bool` pairs. "+FeatureMutableCSINodeAllocatableCount+" (default true): errorCode in "+
			"attachError/detachError. "+FeatureReleaseLeaderElectionOnExit+" (default true): release the Lease on exit. "+
			"Any other gate is refused.")

	// Kubernetes client.
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "",
		"Path to a kubeconfig file. Empty means in-cluster configuration.")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", 0,
		"Client-side QPS limit towards the API server. 0 = auto (1000; the API server's Priority and Fairness does the real limiting); negative disables client-side limiting.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 0,
		"Client-side burst towards the API server. 0 = auto (2000).")
	fs.DurationVar(&o.Resync, "resync", 10*time.Minute,
		"Resync period of the informer caches.")

	// Leader election.
	fs.BoolVar(&o.LeaderElection, "leader-election", true,
		"Use a Lease so that only one replica attaches and detaches at a time.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader-election Lease. Default: $"+EnvPodNamespace+", else the service account's namespace, else \"default\".")
	fs.DurationVar(&o.LeaderElectionLeaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby waits after the last renewal before taking over the Lease.")
	fs.DurationVar(&o.LeaderElectionRenewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew the Lease before giving up leadership.")
	fs.DurationVar(&o.LeaderElectionRetryPeriod, "leader-election-retry-period", 5*time.Second,
		"Interval between attempts to acquire or renew the Lease.")
	fs.Var(&labelsValue{m: &o.LeaderElectionLabels}, "leader-election-labels",
		"Comma-separated `key:value` labels put on the Lease by the leader, e.g. 'my-label:my-value,other:value'.")

	// HTTP.
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080",
		"host:port of the metrics server; \"0\" disables it. Ignored when --http-endpoint is set.")
	fs.StringVar(&o.HealthProbeAddr, "health-probe-bind-address", ":8081",
		"host:port of the /healthz and /readyz server; \"0\" disables it. Ignored when --http-endpoint is set.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0",
		"host:port of a server for Go's /debug/pprof profiles; \"0\" (the default) disables it. Bind it to localhost: profiles reveal the process's internals.")
	fs.StringVar(&o.HTTPEndpoint, "http-endpoint", "",
		"host:port of a single server for metrics, /healthz, /readyz and /healthz/leader-election, replacing --metrics-addr and --health-probe-bind-address.")
	fs.StringVar(&o.MetricsAddress, "metrics-address", "",
		"Deprecated alias of --http-endpoint. Setting both is an error.")
	fs.StringVar(&o.MetricsPath, "metrics-path", "/metrics",
		"HTTP path of the metrics handler.")

	// Process.
	fs.BoolVar(&o.AutoMaxProcs, "automaxprocs", false,
		"Set GOMAXPROCS from the container's CPU limit and log it (the Go runtime already follows the limit unless GODEBUG=containermaxprocs=0; a GOMAXPROCS variable wins).")
	fs.BoolVar(&o.ShowVersion, "version", false,
		"Print the version and exit.")

	// Logging (names of the component-base logging flags).
	fs.IntVar(&o.Verbosity, "v", 5,
		"Log verbosity, 0 to "+strconv.Itoa(MaxVerbosity)+". 5 logs per-volume decisions; gRPC bodies are logged only above 5.")
	fs.StringVar(&o.VModule, "vmodule", "",
		"Accepted for compatibility and ignored (no per-file verbosity).")
	fs.Var(&logFormatValue{p: &o.LogFormat}, flagLoggingFormat,
		"Log `format`: text or json.")
	fs.Var(&logFormatValue{p: &o.LogFormat}, flagLogFormat,
		"Alias of --logging-format (`format`: text or json).")
	fs.DurationVar(&o.LogFlushFrequency, "log-flush-frequency", 5*time.Second,
		"Accepted for compatibility and ignored (logs are written synchronously).")
	fs.BoolVar(&o.LogTextSplitStream, "log-text-split-stream", false,
		"Accepted for compatibility and ignored (all logs go to one stream).")
	fs.BoolVar(&o.LogJSONSplitStream, "log-json-split-stream", false,
		"Accepted for compatibility and ignored (all logs go to one stream).")
	fs.Var(&quantityValue{p: &o.LogTextInfoBufferSize}, "log-text-info-buffer-size",
		"Accepted for compatibility (a `quantity` such as 64Ki) and ignored.")
	fs.Var(&quantityValue{p: &o.LogJSONInfoBufferSize}, "log-json-info-buffer-size",
		"Accepted for compatibility (a `quantity` such as 64Ki) and ignored.")
}

// newFlagSet returns a FlagSet bound to o that reports errors instead of
// exiting or printing, so that Parse stays a pure function.
func newFlagSet(o *Options) *flag.FlagSet {
	fs := flag.NewFlagSet("csi-attacher", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o.register(fs)
	return fs
}

// Usage writes every flag with its default, and the environment variables,
// to w. Call it when Parse returns an error wrapping flag.ErrHelp.
func Usage(w io.Writer) {
	fs := newFlagSet(newDefaults())
	fs.SetOutput(w)
	_, _ = fmt.Fprintf(w, "Usage: csi-attacher --csi-address=ADDRESS [flags]\n\nFlags (-name and --name are the same):\n")
	fs.PrintDefaults()
	_, _ = fmt.Fprintf(w, "\nEnvironment:\n"+
		"  %s\n    \tDefault of --timeout when the flag is not given (a Go duration).\n"+
		"  %s\n    \tDefault of --retry-interval-start when the flag is not given (a Go duration).\n"+
		"  %s\n    \tTimeout of each CSI Probe call (a Go duration, default %s).\n"+
		"  %s\n    \tNamespace of the leader-election Lease when --leader-election-namespace is not given.\n",
		EnvTimeout, EnvRetryIntervalStart, EnvProbeTimeout, DefaultProbeTimeout, EnvPodNamespace)
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

// applyEnv applies the environment variables. The two that shadow flags are
// read only when their flag is absent: the command line is the more
// specific setting, and a malformed variable that is not used should not stop
// the process.
func (o *Options) applyEnv(getenv func(string) string, set map[string]bool) []error {
	var errs []error
	envDuration := func(name string, dst *time.Duration) {
		raw := getenv(name)
		if raw == "" {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: invalid duration (want a Go duration such as 30s or 2m)", name, raw))
		case d <= 0:
			errs = append(errs, fmt.Errorf("%s=%q: must be greater than zero", name, raw))
		default:
			*dst = d
		}
	}
	if !set["timeout"] {
		envDuration(EnvTimeout, &o.Timeout)
	}
	if !set["retry-interval-start"] {
		envDuration(EnvRetryIntervalStart, &o.RetryIntervalStart)
	}
	envDuration(EnvProbeTimeout, &o.ProbeTimeout)
	return errs
}

// validate checks everything that can be checked without a server, in flag
// order, and returns every problem found.
func (o *Options) validate(set map[string]bool) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			add(fmt.Errorf("--%s=%s: must be greater than zero", name, d))
		}
	}

	// CSI.
	if strings.TrimSpace(o.CSIAddress) == "" {
		add(errors.New("--csi-address is required"))
	}
	positive("timeout", o.Timeout)
	positive("retry-interval-start", o.RetryIntervalStart)
	positive("retry-interval-max", o.RetryIntervalMax)
	if o.RetryIntervalStart > 0 && o.RetryIntervalMax > 0 && o.RetryIntervalStart > o.RetryIntervalMax {
		add(fmt.Errorf("--retry-interval-start=%s must not exceed --retry-interval-max=%s", o.RetryIntervalStart, o.RetryIntervalMax))
	}
	if o.WorkerThreads < 1 {
		add(errors.New("--worker-threads must be at least 1"))
	}
	// max_entries is an int32 in the CSI protobuf; reject what cannot be sent.
	if o.MaxEntries < 0 || o.MaxEntries > math.MaxInt32 {
		add(fmt.Errorf("--max-entries=%d: must be between 0 and %d", o.MaxEntries, math.MaxInt32))
	}
	positive("reconcile-sync", o.ReconcileSync)
	if o.MaxInflightPerNode < 0 {
		add(fmt.Errorf("--max-inflight-per-node=%d: must not be negative", o.MaxInflightPerNode))
	}

	// Kubernetes client.
	if math.IsNaN(o.KubeAPIQPS) || math.IsInf(o.KubeAPIQPS, 0) || math.Abs(o.KubeAPIQPS) > math.MaxFloat32 {
		add(fmt.Errorf("--kube-api-qps=%v: must be a finite number", o.KubeAPIQPS))
	}
	if o.KubeAPIBurst < 0 || o.KubeAPIBurst > math.MaxInt32 {
		add(fmt.Errorf("--kube-api-burst=%d: must be between 0 and %d", o.KubeAPIBurst, math.MaxInt32))
	}
	positive("resync", o.Resync)

	// Leader election. The durations are checked only when leader election
	// is on, as the reference does, so a manifest that disables it with odd
	// leftovers still starts.
	if o.LeaderElection {
		add(validateLeaderElectionDurations(o.LeaderElectionLeaseDuration, o.LeaderElectionRenewDeadline, o.LeaderElectionRetryPeriod))
	}
	if o.LeaderElectionNamespace != "" {
		add(validateNamespace("--leader-election-namespace", o.LeaderElectionNamespace))
	}

	// HTTP.
	add(validateBindAddress("metrics-addr", o.MetricsAddr, true))
	add(validateBindAddress("health-probe-bind-address", o.HealthProbeAddr, true))
	add(validateBindAddress("pprof-bind-address", o.PprofAddr, true))
	if o.HTTPEndpoint != "" {
		add(validateBindAddress("http-endpoint", o.HTTPEndpoint, false))
	}
	if o.MetricsAddress != "" {
		add(validateBindAddress("metrics-address", o.MetricsAddress, false))
	}
	if o.HTTPEndpoint != "" && o.MetricsAddress != "" {
		add(errors.New("--http-endpoint and --metrics-address (its deprecated alias) cannot both be set"))
	}
	if _, single := o.SingleHTTPEndpoint(); !single && sameListener(o.MetricsAddr, o.HealthProbeAddr) {
		add(fmt.Errorf("--metrics-addr=%q and --health-probe-bind-address=%q would listen on the same port; use --http-endpoint for one shared server",
			o.MetricsAddr, o.HealthProbeAddr))
	}
	add(o.validateMetricsPath())

	// Logging.
	if o.Verbosity < 0 || o.Verbosity > MaxVerbosity {
		add(fmt.Errorf("--v=%d: must be between 0 and %d", o.Verbosity, MaxVerbosity))
	}
	// The two format flags write the same field, so a conflict is only
	// visible as "both given"; reject it rather than let the order decide.
	if set[flagLoggingFormat] && set[flagLogFormat] {
		add(fmt.Errorf("--%s and --%s are aliases; give only one", flagLoggingFormat, flagLogFormat))
	}
	return errs
}

// validateLeaderElectionDurations applies client-go's own rules
// (leaderelection.NewLeaderElector) at start-up, so that a bad combination
// fails with the flag names instead of inside the manager: everything > 0,
// lease > renew, and renew > 1.2 × retry (client-go's JitterFactor, which
// leaves room for a jittered retry before the deadline).
func validateLeaderElectionDurations(lease, renew, retry time.Duration) error {
	const jitterFactor = 1.2
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"leader-election-lease-duration", lease},
		{"leader-election-renew-deadline", renew},
		{"leader-election-retry-period", retry},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s=%s: must be greater than zero", d.name, d.v))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if lease <= renew {
		errs = append(errs, fmt.Errorf("--leader-election-lease-duration=%s must be greater than --leader-election-renew-deadline=%s", lease, renew))
	}
	if float64(renew) <= jitterFactor*float64(retry) {
		errs = append(errs, fmt.Errorf("--leader-election-renew-deadline=%s must be greater than 1.2 × --leader-election-retry-period=%s", renew, retry))
	}
	return errors.Join(errs...)
}

// validateNamespace checks that ns can name a namespace; source says where it
// came from.
func validateNamespace(source, ns string) error {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Errorf("%s=%q: not a valid namespace: %s", source, ns, strings.Join(msgs, "; "))
	}
	return nil
}

// validateBindAddress checks that addr is host:port with a numeric port, or
// "0" (off) when allowOff. Checking here turns a listen failure deep inside
// the manager into a start-up error that names the flag.
func validateBindAddress(name, addr string, allowOff bool) error {
	if allowOff && addr == "0" {
		return nil
	}
	want := "want host:port, e.g. :8080"
	if allowOff {
		want += `, or "0" to disable`
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s=%q: %s", name, addr, want)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--%s=%q: port %q must be a number from 0 to 65535", name, addr, port)
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("--%s=%q: host %q is neither an IP address nor a DNS name", name, addr, host)
	}
	return nil
}

// validHost reports whether host is an IP address (with an optional IPv6
// zone) or a DNS name.
func validHost(host string) bool {
	ip := host
	if i := strings.IndexByte(ip, '%'); i > 0 {
		ip = ip[:i]
	}
	if net.ParseIP(ip) != nil {
		return true
	}
	return len(validation.IsDNS1123Subdomain(strings.ToLower(host))) == 0
}

// sameListener reports whether two valid bind addresses would claim the same
// port: equal non-zero ports and hosts that are equal or a wildcard.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	na, errA := strconv.ParseUint(pa, 10, 16)
	nb, errB := strconv.ParseUint(pb, 10, 16)
	if errA != nil || errB != nil || na == 0 || na != nb {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// validateMetricsPath checks --metrics-path is an absolute URL path and, when
// the single server also serves health, that it does not shadow a health path.
func (o *Options) validateMetricsPath() error {
	p := o.MetricsPath
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n?#") {
		return fmt.Errorf("--metrics-path=%q: must be an absolute URL path such as /metrics", p)
	}
	if _, single := o.SingleHTTPEndpoint(); single && slices.Contains(healthPaths, p) {
		return fmt.Errorf("--metrics-path=%q: collides with a health endpoint of --http-endpoint", p)
	}
	return nil
}

// resolveNamespace fills LeaderElectionNamespaceResolved. A namespace that
// came from the environment or the file is validated too, because a wrong
// one would only show up as a forbidden Lease write much later.
func (o *Options) resolveNamespace(getenv func(string) string, readFile func(string) ([]byte, error)) error {
	if o.LeaderElectionNamespace != "" {
		o.LeaderElectionNamespaceResolved = o.LeaderElectionNamespace
		return nil // validated with the flags
	}
	if ns := strings.TrimSpace(getenv(EnvPodNamespace)); ns != "" {
		o.LeaderElectionNamespaceResolved = ns
		return validateNamespace(EnvPodNamespace, ns)
	}
	// Any read error means "not in a cluster" (or not allowed to know);
	// falling back is the reference's behaviour.
	if b, err := readFile(ServiceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			o.LeaderElectionNamespaceResolved = ns
			return validateNamespace(ServiceAccountNamespaceFile, ns)
		}
	}
	o.LeaderElectionNamespaceResolved = DefaultLeaderElectionNamespace
	return nil
}

// collectWarnings records accepted settings that do not do what a user of
// the reference might expect.
func (o *Options) collectWarnings(getenv func(string) string, set map[string]bool) {
	warn := func(format string, args ...any) {
		o.Warnings = append(o.Warnings, fmt.Sprintf(format, args...))
	}
	if set["timeout"] && getenv(EnvTimeout) != "" {
		warn("%s is ignored because --timeout is set", EnvTimeout)
	}
	if set["retry-interval-start"] && getenv(EnvRetryIntervalStart) != "" {
		warn("%s is ignored because --retry-interval-start is set", EnvRetryIntervalStart)
	}
	if o.MetricsAddress != "" {
		warn("--metrics-address is deprecated; use --http-endpoint")
	}
	if _, single := o.SingleHTTPEndpoint(); single {
		for _, name := range []string{"metrics-addr", "health-probe-bind-address"} {
			if set[name] {
				warn("--%s is ignored because --http-endpoint (or --metrics-address) is set", name)
			}
		}
	}
	for _, name := range []string{
		"vmodule", "log-flush-frequency",
		"log-text-split-stream", "log-json-split-stream",
		"log-text-info-buffer-size", "log-json-info-buffer-size",
	} {
		if set[name] {
			warn("--%s is accepted for compatibility and ignored", name)
		}
	}
}

// FeatureEnabled reports whether the named feature gate is on. Unknown names
// and Options not built by Parse fall back to the gate defaults.
func (o *Options) FeatureEnabled(name string) bool {
	if v, ok := o.FeatureGates[name]; ok {
		return v
	}
	return DefaultFeatureGates()[name]
}

// EffectiveQPS returns the QPS to put into rest.Config: AutoKubeAPIQPS when
// --kube-api-qps is 0, otherwise the flag (negative disables client-side
// rate limiting in client-go).
func (o *Options) EffectiveQPS() float32 {
	if o.KubeAPIQPS == 0 {
		return AutoKubeAPIQPS
	}
	return float32(o.KubeAPIQPS)
}

// EffectiveBurst returns the burst to put into rest.Config: AutoKubeAPIBurst
// when --kube-api-burst is 0, otherwise the flag.
func (o *Options) EffectiveBurst() int {
	if o.KubeAPIBurst == 0 {
		return AutoKubeAPIBurst
	}
	return o.KubeAPIBurst
}

// LeaderElectionNamespaceOrDefault returns the namespace of the
// leader-election Lease as resolved by Parse. For Options built by hand it
// falls back to the flag value, then "default".
func (o *Options) LeaderElectionNamespaceOrDefault() string {
	switch {
	case o.LeaderElectionNamespaceResolved != "":
		return o.LeaderElectionNamespaceResolved
	case o.LeaderElectionNamespace != "":
		return o.LeaderElectionNamespace
	default:
		return DefaultLeaderElectionNamespace
	}
}

// SingleHTTPEndpoint returns the address of the reference-style single
// diagnostics server (--http-endpoint, or its deprecated alias
// --metrics-address) and whether one is configured. When ok, that server
// must serve metrics, /healthz, /readyz and /healthz/leader-election.
func (o *Options) SingleHTTPEndpoint() (addr string, ok bool) {
	if o.HTTPEndpoint != "" {
		return o.HTTPEndpoint, true
	}
	if o.MetricsAddress != "" {
		return o.MetricsAddress, true
	}
	return "", false
}

// MetricsBindAddress returns metricsserver.Options.BindAddress for the
// Manager: the single endpoint when configured, else --metrics-addr ("0" = off).
func (o *Options) MetricsBindAddress() string {
	if addr, ok := o.SingleHTTPEndpoint(); ok {
		return addr
	}
	return o.MetricsAddr
}

// HealthProbeBindAddress returns manager.Options.HealthProbeBindAddress: "0"
// when a single endpoint is configured (the caller then mounts the health
// handlers on the metrics server through metricsserver.Options.ExtraHandlers),
// else --health-probe-bind-address.
func (o *Options) HealthProbeBindAddress() string {
	if _, ok := o.SingleHTTPEndpoint(); ok {
		return "0"
	}
	return o.HealthProbeAddr
}

// featureGatesValue is the flag.Value of --feature-gates. Like
// component-base, repeated flags merge, later keys win.
type featureGatesValue struct{ m *map[string]bool }

func (v *featureGatesValue) String() string {
	if v == nil || v.m == nil || len(*v.m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*v.m))
	for k, b := range *v.m {
		parts = append(parts, k+"="+strconv.FormatBool(b))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v *featureGatesValue) Set(s string) error {
	known := DefaultFeatureGates()
	parsed := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok {
			return fmt.Errorf("%q: missing =true or =false", item)
		}
		if _, isKnown := known[key]; !isKnown {
			// The reference's flag also takes the gates of the Kubernetes
			// libraries it links (AllAlpha, LoggingBetaOptions, the API
			// server's...). None changes how volumes are attached, and
			// accepting them would mean ignoring them.
			return fmt.Errorf("unknown feature gate %q: the attacher has only %s and %s; "+
				"the other gates the reference accepts belong to its Kubernetes libraries and do not apply here, remove it",
				key, FeatureMutableCSINodeAllocatableCount, FeatureReleaseLeaderElectionOnExit)
		}
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%s=%q: value must be true or false", key, val)
		}
		parsed[key] = b
	}
	if *v.m == nil {
		*v.m = known
	}
	for k, b := range parsed {
		(*v.m)[k] = b
	}
	return nil
}

// labelsValue is the flag.Value of --leader-election-labels ("k:v,k2:v2").
// Keys and values are checked as Kubernetes label keys and values here,
// because a bad label would otherwise fail only when the Lease is written.
type labelsValue struct{ m *map[string]string }

func (v *labelsValue) String() string {
	if v == nil || v.m == nil || len(*v.m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*v.m))
	for k, val := range *v.m {
		parts = append(parts, k+":"+val)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v *labelsValue) Set(s string) error {
	parsed := map[string]string{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) != 2 {
			return fmt.Errorf("%q: want key:value", item)
		}
		key, val := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
			return fmt.Errorf("label key %q: %s", key, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
			return fmt.Errorf("label value %q: %s", val, strings.Join(msgs, "; "))
		}
		parsed[key] = val
	}
	if *v.m == nil {
		*v.m = map[string]string{}
	}
	for k, val := range parsed {
		(*v.m)[k] = val
	}
	return nil
}

// logFormatValue is the flag.Value of --logging-format and --log-format.
type logFormatValue struct{ p *string }

func (v *logFormatValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *logFormatValue) Set(s string) error {
	switch s {
	case LogFormatText, LogFormatJSON:
		*v.p = s
		return nil
	default:
		return fmt.Errorf("must be %q or %q", LogFormatText, LogFormatJSON)
	}
}

// quantityValue is the flag.Value of the log buffer-size flags: a
// non-negative resource quantity (e.g. 64Ki), checked and kept as given.
type quantityValue struct{ p *string }

func (v *quantityValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *quantityValue) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return errors.New("must be a quantity such as 64Ki or 1M")
	}
	if q.Sign() < 0 {
		return errors.New("must not be negative")
	}
	*v.p = s
	return nil
}
