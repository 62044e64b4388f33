package options

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// The two names of the log format flag. Both are kept: --logging-format is
// the reference's (component-base) name, --log-format the product's.
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
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout,
		"Timeout of each ControllerPublish/ControllerUnpublish call and of one ListVolumes pass. Overrides "+EnvTimeout+". "+
			"On SIGTERM the attacher waits up to this plus 10 s for the calls in flight: above 15s, raise the Pod's terminationGracePeriodSeconds to match.")
	fs.DurationVar(&o.RetryIntervalStart, "retry-interval-start", time.Second,
		"Initial retry delay of a failed attach or detach; it doubles on each failure up to --retry-interval-max. Overrides "+EnvRetryIntervalStart+".")
	fs.DurationVar(&o.RetryIntervalMax, "retry-interval-max", 30*time.Second,
		"Maximum retry delay of a failed attach or detach.")
	fs.UintVar(&o.WorkerThreads, "worker-threads", DefaultWorkerThreads,
		"Number of concurrent reconciles for attaching VolumeAttachments, again for detaching them, and (at most 100) for PersistentVolumes. "+
			"A reconcile holds its worker for its CSI call, so this bounds the calls in flight per lane. Must be at least 1.")
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
	fs.IntVar(&o.MaxInflight, "max-inflight", DefaultMaxInflight,
		"Maximum attach/detach calls in flight in all. While the driver answers ResourceExhausted to most calls across several nodes "+
			"(not just some full nodes) the bound halves; it comes back by itself, up to this value. 0 means no limit and no adaptation.")
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
	fs.BoolVar(&o.LeaderElection, "leader-election", false,
		"Use a Lease so that only one replica attaches and detaches at a time. Needed with more than one replica; "+
			"needs the Role for Leases in the Lease's namespace.")
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
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ListenerOff,
		"host:port of the metrics server; \"0\" (the default) opens none. Ignored when --http-endpoint is set.")
	fs.StringVar(&o.HealthProbeAddr, "health-probe-bind-address", ListenerOff,
		"host:port of the /healthz and /readyz server; \"0\" (the default) opens none. Ignored when --http-endpoint is set.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0",
		"host:port of a server for Go's /debug/pprof profiles; \"0\" (the default) disables it. Bind it to localhost: profiles reveal the process's internals.")
	fs.StringVar(&o.HTTPEndpoint, "http-endpoint", "",
		"host:port of a single server for metrics, /healthz, /readyz and their named checks, replacing --metrics-addr and --health-probe-bind-address. "+
			"Empty (the default) opens none.")
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

// Flag is one command-line flag as --help shows it.
type Flag struct {
	// Name is the flag's name without dashes, e.g. "timeout".
	Name string
	// Default is its default as flag.Flag.DefValue gives it: "15s", "0",
	// "" for an empty string, "false" for a bool that is off.
	Default string
}

// Flags returns every flag in name order, for the documentation's tests:
// the README's tables of defaults are checked against it.
func Flags() []Flag {
	var out []Flag
	newFlagSet(newDefaults()).VisitAll(func(f *flag.Flag) {
		out = append(out, Flag{Name: f.Name, Default: f.DefValue})
	})
	return out
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
