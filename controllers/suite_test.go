package controllers_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/controllers/volumeattachment"
	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/rights"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// Test timings: short CSI timeout and backoff so failure paths are quick.
const (
	csiTimeout    = time.Second
	retryStart    = 100 * time.Millisecond
	retryMax      = 2 * time.Second
	eventually    = 20 * time.Second
	pollInterval  = 50 * time.Millisecond
	consistentFor = 2 * time.Second
)

// Driver names of the attachers the suite runs side by side. Each one only
// touches VolumeAttachments of its own driver, which is itself under test.
const (
	fullDriver     = "full.csi.test"
	noReadonly     = "noro.csi.test"
	trivialDriver  = "trivial.csi.test"
	countedDriver  = "counted.csi.test"
	unknownDriver  = "other.csi.test"
	defaultFSType  = "ext4"
	fullDriverNode = "node-id-"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	attachers = map[string]*testAttacher{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{BinaryAssetsDirectory: envtestAssets()}
	// The pv-protection finalizer is removed by kube-controller-manager,
	// which envtest does not run; without this PVs could never go away.
	testEnv.ControlPlane.GetAPIServer().Configure().
		Append("disable-admission-plugins", "StorageObjectInUseProtection")
	testbed.SetFeatureGates(testEnv)
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred(), "envtest needs kube-apiserver and etcd: run through `make test`, which builds them")
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	full := fake.DefaultConfig(fullDriver)
	noro := fake.DefaultConfig(noReadonly)
	noro.PublishReadonly = false
	noro.SingleNodeMultiWriter = false
	trivial := fake.DefaultConfig(trivialDriver)
	trivial.PublishUnpublish = false
	for _, c := range []fake.Config{full, noro, trivial} {
		attachers[c.Name] = startAttacher(c)
	}
	attachers[countedDriver] = startAttacher(fake.DefaultConfig(countedDriver), attacherOptions{wrap: writes.wrap})
})

// envtestAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS (set by
// `make test`), else the folder hack/install-envtest.sh fills, so a plain
// `go test ./controllers` works once `make test` has run.
func envtestAssets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := exec.Command("../hack/install-envtest.sh").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

var _ = AfterSuite(func() {
	for _, a := range attachers {
		a.stop()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// testAttacher is one attacher as main.go builds it: a fake driver on a
// real unix socket, the shared CSI client, and a Manager with both
// reconcilers, against the suite's API server.
type testAttacher struct {
	driver *fake.Driver
	client *csi.Client
	// attacher is what controllers.Setup built, for tests that look at its
	// in-memory state.
	attacher *controllers.Attacher
	// cache is the Manager's cache, for tests that must know what this
	// replica has seen (a standby's cache runs too).
	cache client.Reader
	// lock is the leader-election lock, with leader election on.
	lock   *leader.Lock
	cancel context.CancelFunc
	done   chan struct{}
	dir    string
	// elected is closed once the Manager leads (at once without leader
	// election).
	elected <-chan struct{}
	// ownsDriver is false when the driver was passed in attacherOptions:
	// stop then leaves it (and its socket directory) running.
	ownsDriver bool
}

// attacherOptions vary one test attacher from the defaults.
type attacherOptions struct {
	wrap               func(client.WithWatch) client.WithWatch
	timeout            time.Duration
	workers            int
	maxInflightPerNode int
	// maxInflight is --max-inflight, the adaptive bound of calls in flight.
	maxInflight int
	// restConfig, when set, is used instead of the suite's admin cfg (e.g.
	// a user that holds only the attacher's RBAC rights).
	restConfig *rest.Config
	// logger, when set, replaces logf.Log for the CSI client and the Manager.
	logger *logr.Logger
	// leaderElection runs the Manager with a Lease in "default", with short
	// timings; releaseOnCancel says whether a stop gives the Lease up.
	leaderElection  bool
	releaseOnCancel bool
	// metrics, when set, is given to the VolumeAttachment reconciler.
	metrics *metrics.Metrics
	// driver, when set, is an already started fake driver to connect to
	// instead of a new one (e.g. a restarted attacher on the same driver);
	// its Config name must match. stop does not stop it.
	driver *fake.Driver
	// reconcileSync, when set, runs the ListVolumes drift pass with this
	// interval (pages of one entry, so paging is exercised), if the plan
	// runs it, as main.go does.
	reconcileSync time.Duration
	// retryStart and retryMax, when set, replace the suite's short backoff.
	retryStart, retryMax time.Duration
	// watchSecrets reviews the Secret watch's rights (granted to the
	// suite's admin), so the plan turns the watch on, as main.go's does
	// when the attacher may list and watch Secrets.
	watchSecrets bool
	// wrapRecorder, when set, wraps the Manager's event recorder (e.g. to
	// count Events as they are emitted, before any aggregation).
	wrapRecorder func(events.EventRecorder) events.EventRecorder
	// omitErrorCode sets OmitErrorCode (the feature gate
	// MutableCSINodeAllocatableCount off).
	omitErrorCode bool
	// leaseDuration, renewDeadline and retryPeriod, when set, replace the
	// short test timings of leader election.
	leaseDuration, renewDeadline, retryPeriod time.Duration
	// wrapAPIReader, when set, wraps the uncached reader the Secrets are
	// read with (e.g. to count the GETs).
	wrapAPIReader func(client.Reader) client.Reader
}

// Leader-election timings for tests: short, so handovers are quick.
var (
	testLeaseDuration = 3 * time.Second
	testRenewDeadline = 2 * time.Second
	testRetryPeriod   = 250 * time.Millisecond
)

func startAttacher(dc fake.Config, opts ...attacherOptions) *testAttacher {
	GinkgoHelper()
	var o attacherOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.timeout <= 0 {
		o.timeout = csiTimeout
	}
	if o.workers <= 0 {
		o.workers = 10
	}
	if o.retryStart <= 0 {
		o.retryStart = retryStart
	}
	if o.retryMax <= 0 {
		o.retryMax = retryMax
	}
	restConfig, logger := cfg, logf.Log
	if o.restConfig != nil {
		restConfig = o.restConfig
	}
	if o.logger != nil {
		logger = *o.logger
	}
	driver, ownsDriver := o.driver, o.driver == nil
	var dir string
	if ownsDriver {
		var err error
		dir, err = os.MkdirTemp("", "csi-envtest")
		Expect(err).NotTo(HaveOccurred())
		driver = fake.New(dc)
		Expect(driver.Start(filepath.Join(dir, "csi.sock"))).To(Succeed())
	} else {
		dir = filepath.Dir(strings.TrimPrefix(driver.Address(), "unix://"))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cc, err := csi.Connect(ctx, csi.Options{
		Address:      driver.Address(),
		Timeout:      o.timeout,
		ProbeTimeout: time.Second,
		Logger:       logger.WithName("csi").WithValues("driver", dc.Name),
		Registry:     prometheus.NewRegistry(),
	})
	Expect(err).NotTo(HaveOccurred())
	caps := cc.Capabilities()

	leaseDuration, renewDeadline, retryPeriod := testLeaseDuration, testRenewDeadline, testRetryPeriod
	if o.leaseDuration > 0 {
		leaseDuration, renewDeadline, retryPeriod = o.leaseDuration, o.renewDeadline, o.retryPeriod
	}
	var lock *leader.Lock
	var fence volumeattachment.Fence
	if o.leaderElection {
		// As main.go: the Lease lock that hands over at once, and the fence
		// that gates every CSI call on it.
		f := leader.NewFence(retryPeriod, o.timeout)
		lock, err = leader.NewLock(ctx, leader.Options{
			Config: restConfig, Namespace: "default", Name: leader.LeaseName(dc.Name),
			RenewDeadline: renewDeadline, Fence: f,
		})
		Expect(err).NotTo(HaveOccurred())
		fence = f
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		LeaderElectionResourceLockInterface: leaderLock(lock),
		Scheme:                              scheme,
		Logger:                              logger,
		LeaderElection:                      o.leaderElection,
		LeaderElectionID:                    leader.LeaseName(dc.Name),
		LeaderElectionNamespace:             "default",
		LeaderElectionReleaseOnCancel:       o.releaseOnCancel,
		LeaseDuration:                       &leaseDuration,
		RenewDeadline:                       &renewDeadline,
		RetryPeriod:                         &retryPeriod,
		// As main.go: in-flight CSI calls finish before the Lease goes.
		GracefulShutdownTimeout: ptr.To(controllers.ShutdownGracePeriod(o.timeout)),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		// Several attachers run in one process here; in production each
		// process has one Manager and unique controller names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:      cache.Options(dc.Name, nil),
		NewClient: func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(config, options)
			if err == nil && o.wrap != nil {
				c = o.wrap(c)
			}
			return c, err
		},
	})
	Expect(err).NotTo(HaveOccurred())
	var recorder events.EventRecorder = mgr.GetEventRecorder("csi-attacher")
	if o.wrapRecorder != nil {
		recorder = o.wrapRecorder(recorder)
	}
	var apiReader client.Reader = mgr.GetAPIReader()
	if o.wrapAPIReader != nil {
		apiReader = o.wrapAPIReader(apiReader)
	}
	cfgs := controllers.Config{
		Client:             mgr.GetClient(),
		APIReader:          apiReader,
		Recorder:           recorder,
		Attacher:           cc,
		Lister:             cc,
		DriverName:         cc.DriverName(),
		DefaultFSType:      defaultFSType,
		Workers:            o.workers,
		RetryIntervalStart: o.retryStart,
		RetryIntervalMax:   o.retryMax,
		MaxInflightPerNode: o.maxInflightPerNode,
		MaxInflight:        o.maxInflight,
		Metrics:            o.metrics,
		OmitErrorCode:      o.omitErrorCode,
		// Zero, the default here, leaves the drift pass out.
		ReconcileSync: o.reconcileSync,
		Fence:         fence,
		// Pages of one entry, so paging is exercised.
		MaxEntries: 1,
	}
	// As main.go: the plan is decided once, from the driver's capabilities
	// and the granted rights, and Setup applies it. The Secret watch's
	// rights are reviewed only for a spec that wants the watch: the suite's
	// admin is granted everything, where the shipped RBAC grants get only.
	var grants controllers.Grants
	if o.watchSecrets {
		grants = controllers.ReviewGrants(ctx, rights.ClientReviewer(mgr.GetClient()), caps)
	}
	plan := controllers.NewPlan(caps, grants)
	Expect(plan.SecretWatch).To(Equal(o.watchSecrets && !caps.Trivial()), "the Secret watch's rights are granted")
	attacher, err := controllers.Setup(ctx, mgr, cfgs, plan)
	Expect(err).NotTo(HaveOccurred())
	a := &testAttacher{driver: driver, client: cc, attacher: attacher, cache: mgr.GetCache(), lock: lock, cancel: cancel, done: make(chan struct{}), dir: dir, elected: mgr.Elected(), ownsDriver: ownsDriver}
	go func() {
		defer GinkgoRecover()
		defer close(a.done)
		Expect(mgr.Start(ctx)).To(Succeed())
		if lock != nil {
			lock.Shutdown()
		}
	}()
	return a
}

// leaderLock keeps a nil lock a nil interface.
func leaderLock(l *leader.Lock) resourcelock.Interface {
	if l == nil {
		return nil
	}
	return l
}

func (a *testAttacher) stop() {
	a.cancel()
	<-a.done
	_ = a.client.Close()
	if !a.ownsDriver {
		return
	}
	a.driver.Stop()
	_ = os.RemoveAll(a.dir)
}
