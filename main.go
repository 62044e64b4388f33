package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/controllers/volumeattachment"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/doctor"
	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/logging"
	"github.com/csi-attacher/csi-attacher/internal/maxprocs"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/rights"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// defaultGCPercent trades a little CPU for a smaller peak heap: bursts of
// attachments decode many objects at once, and Go's default of 100 lets the
// heap double before collecting. GOGC in the environment still wins.
const defaultGCPercent = 50

func main() {
	if len(os.Args) > 1 && os.Args[1] == "doctor" {
		os.Exit(doctor.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	opts, err := options.Parse(os.Args[1:], os.Getenv, os.ReadFile)
	if errors.Is(err, flag.ErrHelp) {
		options.Usage(os.Stdout)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-attacher: %v\n", err)
		fmt.Fprintln(os.Stderr, "Run 'csi-attacher --help' for the list of flags.")
		os.Exit(2)
	}
	if opts.ShowVersion {
		fmt.Printf("%s %s\n", os.Args[0], versionString())
		return
	}
	logger, err := logging.New(opts.Logging(), os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-attacher: %v\n", err)
		os.Exit(2)
	}
	ctrl.SetLogger(logger)
	logging.RouteKlog(logger)
	setupLog := logger.WithName("setup")
	for _, w := range opts.Warnings {
		setupLog.Info("Configuration warning", "warning", w)
	}
	if opts.AutoMaxProcs {
		if r, err := maxprocs.Apply(os.Getenv, os.ReadFile); err != nil {
			setupLog.Error(err, "--automaxprocs: cannot read the cgroup CPU limit; GOMAXPROCS stays as the Go runtime set it", "gomaxprocs", r.Procs)
		} else {
			setupLog.Info("Set GOMAXPROCS", "gomaxprocs", r.Procs, "reason", r.String())
		}
	}
	if err := run(logr.NewContext(ctrl.SetupSignalHandler(), logger), opts); err != nil {
		setupLog.Error(err, "csi-attacher stopped")
		os.Exit(1)
	}
}

// run connects to the driver, builds the Manager and runs it until ctx ends.
func run(ctx context.Context, opts *options.Options) error {
	logger := logr.FromContextOrDiscard(ctx)
	setupLog := logger.WithName("setup")
	setupLog.Info("Starting csi-attacher", "version", version, "csiAddress", opts.CSIAddress)

	restConfig, err := kubeConfig(opts)
	if err != nil {
		return err
	}

	probeAddr := opts.HealthProbeBindAddress()
	if single, ok := opts.SingleHTTPEndpoint(); ok {
		probeAddr = single
	}
	probes, err := serveStartupProbes(probeAddr, opts.CSIAddress, setupLog)
	if err != nil {
		return err
	}
	driver, err := csi.Connect(ctx, csi.Options{
		Address:          opts.CSIAddress,
		Timeout:          opts.Timeout,
		ProbeTimeout:     opts.ProbeTimeout,
		MaxGRPCLogLength: opts.MaxGRPCLogLength,
		Logger:           logger.WithName("csi"),
		Registry:         ctrlmetrics.Registry,
		Waiting:          probes.Waiting,
	})
	probes.Stop()
	if err != nil {
		return fmt.Errorf("failed to connect to the CSI driver at %s: %w", opts.CSIAddress, err)
	}
	defer driver.Close()

	// What runs is decided once, here, from the driver's capabilities and
	// the rights the API server grants (controllers.NewPlan).
	plan, err := newPlan(ctx, restConfig, driver.Capabilities())
	if err != nil {
		return err
	}
	caps := plan.Capabilities
	setupLog.Info("CSI driver ready", "driver", driver.DriverName(), "vendorVersion", driver.VendorVersion(),
		"mode", plan.ModeLog(), "publishReadonly", caps.PublishReadonly, "singleNodeMultiWriter", caps.SingleNodeMultiWriter)
	if volume.IsMigrationDriver(driver.DriverName()) {
		setupLog.Info("CSI migration: in-tree PersistentVolumes of the plugin this driver took over are attached through their translated CSI source",
			"driver", driver.DriverName())
	}

	cacheReady := &cache.Readiness{}
	ready := &readiness{}
	var lock *leader.Lock
	var fence *leader.Fence
	if opts.LeaderElection {
		// A Lease lock that lets a standby take over as soon as the leader
		// releases the Lease, and a fence that keeps this replica from
		// calling the driver once it may be replaced (see internal/leader).
		fence = leader.NewFence(opts.LeaderElectionRetryPeriod, opts.Timeout)
		lock, err = leader.NewLock(ctx, leader.Options{
			Config: restConfig, Namespace: opts.LeaderElectionNamespaceResolved, Name: leader.LeaseName(driver.DriverName()),
			Labels: opts.LeaderElectionLabels, RenewDeadline: opts.LeaderElectionRenewDeadline,
			NoWatch: !leaseWatch(logr.NewContext(ctx, setupLog), restConfig, opts.LeaderElectionNamespaceResolved, leader.LeaseName(driver.DriverName())),
			Fence:   fence, LeaseDuration: opts.LeaderElectionLeaseDuration,
		})
		if err != nil {
			return fmt.Errorf("failed to set up leader election: %w", err)
		}
		defer lock.Shutdown()
		setupLog.Info("Leader election: no CSI call starts once the Lease renewal is overdue; after an unclean takeover, attachments already pending wait for the previous leader's calls to reach --timeout",
			"fenceAfter", leader.FenceDelay(opts.LeaderElectionRetryPeriod).String(),
			"margin", leader.MarginOf(opts.LeaderElectionLeaseDuration, opts.LeaderElectionRetryPeriod).String())
	}
	mgr, err := newManager(restConfig, opts, driver, cacheReady, ready, lock)
	if err != nil {
		return err
	}
	m, err := setupMetrics(mgr, driver)
	if err != nil {
		return err
	}
	workers := int(opts.WorkerThreads)
	cfg := controllers.Config{
		Client:             mgr.GetClient(),
		APIReader:          mgr.GetAPIReader(),
		Recorder:           mgr.GetEventRecorder("csi-attacher"),
		Attacher:           driver,
		Lister:             driver,
		DriverName:         driver.DriverName(),
		DefaultFSType:      opts.DefaultFSType,
		Workers:            workers,
		RetryIntervalStart: opts.RetryIntervalStart,
		RetryIntervalMax:   opts.RetryIntervalMax,
		MaxInflightPerNode: opts.MaxInflightPerNode,
		MaxInflight:        opts.MaxInflight,
		Metrics:            m,
		OmitErrorCode:      !opts.FeatureEnabled(options.FeatureMutableCSINodeAllocatableCount),
		ReconcileSync:      opts.ReconcileSync,
		Fence:              fenceOrNil(fence),
		MaxEntries:         int32(opts.MaxEntries),
	}
	plan.LogSecretWatch(setupLog, opts.RetryIntervalMax)
	attacher, err := controllers.Setup(ctx, mgr, cfg, plan)
	if err != nil {
		return err
	}
	// What failed while the driver was gone is tried again as soon as it
	// is back, not at the end of its backoff.
	monitor := driver.HealthMonitor(csi.DefaultHealthInterval)
	monitor.OnRecovered(attacher.RetryFailed)
	if err := mgr.Add(monitor); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck(healthzPing, healthz.Ping); err != nil {
		return err
	}
	if err := mgr.Add(cacheReady); err != nil {
		return err
	}
	if err := ready.add(mgr, readyzInformers, cacheReady.Check); err != nil {
		return err
	}
	if err := ready.add(mgr, readyzDriver, driver.ReadyzCheck); err != nil {
		return err
	}
	if err := watchRights(ctx, mgr, ready, opts, driver.DriverName()); err != nil {
		return err
	}
	if !opts.LeaderElection {
		if err := watchOtherLeader(ctx, mgr, opts, driver.DriverName()); err != nil {
			return err
		}
	}
	// csi_attacher_ready: what /readyz says, for the alert on a replica that
	// is scraped but never becomes ready.
	m.SetReadySource(func() error { return ready.Check(nil) })
	setupLog.Info("Starting manager", "leaderElection", opts.LeaderElection,
		"lease", leader.LeaseName(driver.DriverName()), "workers", workers)
	return mgr.Start(ctx)
}

// fenceOrNil keeps a nil *leader.Fence from becoming a non-nil interface.
func fenceOrNil(f *leader.Fence) volumeattachment.Fence {
	if f == nil {
		return nil
	}
	return f
}

// leaseWatch tells whether the leader-election lock may watch its Lease
// (list and watch on it, rights.LeaseWatchRights) and says at start which
// way it runs. Without them the watch would never sync, so the lock reads
// the Lease with plain GETs. A failed check counts as no.
func leaseWatch(ctx context.Context, cfg *rest.Config, namespace, name string) bool {
	setupLog := logr.FromContextOrDiscard(ctx)
	cs, err := kubernetes.NewForConfig(cfg)
	allowed := false
	var watchRights []rights.Right
	if err == nil {
		watchRights, err = rights.LeaseWatchRights(namespace, name)
	}
	if err == nil {
		allowed, err = rights.AllGranted(rights.ReviewRights(ctx, cs.AuthorizationV1().SelfSubjectAccessReviews().Create, watchRights))
	}
	switch {
	case err != nil:
		setupLog.Error(err, "Cannot tell whether the Lease may be watched; without list and watch, "+rights.LeaseWatchLoss)
	case allowed:
		setupLog.V(2).Info("Watching the Lease: a standby takes over as soon as the leader releases it")
	default:
		setupLog.Info("Cannot list and watch Leases (RBAC): " + rights.LeaseWatchLoss)
	}
	return err == nil && allowed
}

// newPlan reviews the optional rights the plan of a driver with caps
// depends on, with the attacher's own credentials, and decides what runs.
func newPlan(ctx context.Context, cfg *rest.Config, caps csi.Capabilities) (controllers.Plan, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return controllers.Plan{}, fmt.Errorf("failed to create the client for access reviews: %w", err)
	}
	grants := controllers.ReviewGrants(ctx, cs.AuthorizationV1().SelfSubjectAccessReviews().Create, caps)
	return controllers.NewPlan(caps, grants), nil
}

// setupMetrics registers the csi_attacher_* metrics: the VolumeAttachment
// state and pending-age gauges are computed from the cache at scrape time,
// the driver gauges follow the CSI client's health, and the build info
// says which build runs.
func setupMetrics(mgr manager.Manager, driver *csi.Client) (*metrics.Metrics, error) {
	m := metrics.New(driver.DriverName())
	if err := m.Register(ctrlmetrics.Registry); err != nil {
		return nil, fmt.Errorf("failed to register metrics: %w", err)
	}
	m.SetSnapshotSource(metrics.CacheSnapshot(mgr.GetCache(), driver.DriverName()))
	rev, date := buildStamp()
	m.SetBuildInfo(version, rev, date)
	err := mgr.Add(metrics.DriverGauges{Metrics: m, Driver: driver})
	return m, err
}

func kubeConfig(opts *options.Options) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if opts.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load the Kubernetes client configuration: %w", err)
	}
	cfg.QPS = opts.EffectiveQPS()
	cfg.Burst = opts.EffectiveBurst()
	cfg.UserAgent = "csi-attacher/" + version
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return cfg, nil
}

// ownConnection returns an HTTP client that opens a connection of its own
// to the API server. The cache's lists and watches use it: on the shared
// HTTP/2 connection the watch streams queue behind the responses of a
// hundred concurrent patches, and an API server that finds a watcher
// falling behind closes it, which delays every event until the re-watch.
func ownConnection(cfg *rest.Config) (*http.Client, error) {
	c := rest.CopyConfig(cfg)
	// client-go shares one transport between equal configurations unless a
	// custom dialer makes the configuration uncacheable.
	c.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	// Uncompressed: the API server gzips lists and watch streams for a
	// client that accepts it, which costs both ends CPU for every object of
	// the initial lists (the bulk of a start on a large cluster, and of the
	// time before the first worker) to save bandwidth that the pod network
	// does not lack.
	c.DisableCompression = true
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("failed to create the HTTP client for watches: %w", err)
	}
	return hc, nil
}

// newManager builds the Manager and points cacheReady at its cache. With
// --http-endpoint, that server's /readyz runs the checks of ready, which
// the caller fills before the Manager starts.
// lock is the Lease lock of internal/leader, nil without leader election.
func newManager(restConfig *rest.Config, opts *options.Options, driver *csi.Client, cacheReady *cache.Readiness, ready *readiness, lock *leader.Lock) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metricsOpts := metricsserver.Options{BindAddress: opts.MetricsBindAddress(), ExtraHandlers: map[string]http.Handler{}}
	if opts.MetricsPath != "" && opts.MetricsPath != "/metrics" {
		metricsOpts.ExtraHandlers[opts.MetricsPath] = promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{})
	}
	// /healthz/leader-election fails when this replica leads but has
	// stopped renewing the Lease (leader.Lock.Check); without leader
	// election there is nothing to fail.
	leaderCheck := healthz.Ping
	var leaseLock resourcelock.Interface // nil without leader election
	if lock != nil {
		leaseLock, leaderCheck = lock, lock.Check
	}
	if _, single := opts.SingleHTTPEndpoint(); single {
		// The reference attacher's manifests probe one address; serve the
		// health endpoints next to the metrics there.
		for path, h := range singleServerHandlers(leaderCheck, ready) {
			metricsOpts.ExtraHandlers[path] = h
		}
	}
	resync := opts.Resync
	cacheOpts := cache.Options(driver.DriverName(), &resync)
	watchClient, err := ownConnection(restConfig)
	if err != nil {
		return nil, err
	}
	cacheOpts.HTTPClient = watchClient
	// In-flight reconciles (and their CSI calls, bounded by --timeout) may
	// finish after SIGTERM before the Lease is released.
	shutdown := controllers.ShutdownGracePeriod(opts.Timeout)
	leaseDuration, renewDeadline, retryPeriod := opts.LeaderElectionLeaseDuration, opts.LeaderElectionRenewDeadline, opts.LeaderElectionRetryPeriod
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  opts.HealthProbeBindAddress(),
		PprofBindAddress:        opts.PprofAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        leader.LeaseName(driver.DriverName()),
		LeaderElectionNamespace: opts.LeaderElectionNamespaceResolved,
		LeaderElectionLabels:    opts.LeaderElectionLabels,
		// The Manager takes the ID, namespace, labels and timings from the
		// lock and from here; the elector it builds uses the lock.
		LeaderElectionResourceLockInterface: leaseLock,
		LeaderElectionReleaseOnCancel:       opts.FeatureEnabled(options.FeatureReleaseLeaderElectionOnExit),
		LeaseDuration:                       &leaseDuration,
		RenewDeadline:                       &renewDeadline,
		RetryPeriod:                         &retryPeriod,
		GracefulShutdownTimeout:             &shutdown,
		Cache:                               cacheOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the manager: %w", err)
	}
	cacheReady.Cache = mgr.GetCache()
	// Served without leader election too (always ok then), as on the
	// single server: a probe on the reference's path works either way.
	if err := mgr.AddHealthzCheck(healthzLeaderElection, leaderCheck); err != nil {
		return nil, err
	}
	return mgr, nil
}
