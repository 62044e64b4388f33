package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

const (
	driverName = "demo.csi.example.com"
	nodeName   = "demo-node"
	nodeID     = "demo-node-id"
	pvName     = "demo-pv"
	vaName     = "demo-va"
	volumeID   = "vol-demo-1"

	// stepTimeout bounds every step the demo waits for.
	stepTimeout = 30 * time.Second
	// attacherStopTimeout is the attacher's own graceful shutdown (30s)
	// plus a margin; after it the attacher is killed.
	attacherStopTimeout = 35 * time.Second
	// logTail is how many attacher log lines a failure prints.
	logTail = 20
)

// errInterrupted ends the demo after Ctrl-C (or SIGTERM).
var errInterrupted = errors.New("interrupted")

func main() {
	ctx := testbed.SignalContext()
	d := &demo{start: time.Now(), verbose: os.Getenv("DEMO_VERBOSE") == "1"}
	err := d.run(ctx)
	if errors.Is(err, errInterrupted) || (err != nil && ctx.Err() != nil) {
		err = errInterrupted
		d.say("interrupted")
	}
	// The end of the attacher log is read before the attacher is stopped,
	// so that it shows the failure rather than the shutdown.
	var logLines []string
	var logErr error
	if err != nil && !errors.Is(err, errInterrupted) && d.attacher != nil {
		logLines, logErr = testbed.Tail(d.logPath, logTail)
	}
	// An interrupted demo leaves nothing behind either; a failed one keeps
	// the attacher log.
	d.cleanup(err == nil || errors.Is(err, errInterrupted))
	if err != nil {
		d.fail(err, logLines, logErr)
		os.Exit(1)
	}
}

// demo holds everything the run starts, so that cleanup can stop it.
type demo struct {
	start   time.Time
	verbose bool

	// out serialises the output of the main goroutine, the driver's gRPC
	// goroutines and the attacher log echo.
	out sync.Mutex

	tmpDir   string
	logPath  string
	cleanups []func()

	driver *fake.Driver
	c      client.WithWatch

	attacher     *testbed.Attacher
	attacherDone <-chan struct{} // attacher.Done(), nil until it starts

	events     chan objEvent // object changes and driver calls, see waitFor
	eventAt    time.Time     // arrival of the object event being applied
	va         vaState
	pv         pvState
	attachedAt time.Time
	vaGoneAt   time.Time

	metricsURL string // the attacher's /metrics
}

func (d *demo) run(ctx context.Context) error {
	d.header()
	d.events = make(chan objEvent, 1024)
	assets, err := testbed.AssetsDir("demo")
	if err != nil {
		return err
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}

	dir, err := testbed.TempDir("csi-demo")
	if err != nil {
		return err
	}
	d.tmpDir = dir
	d.logPath = filepath.Join(dir, "csi-attacher.log")

	// Build the attacher while the control plane starts; both take seconds.
	bin := filepath.Join(dir, "csi-attacher")
	build := d.buildAttacher(ctx, root, bin)

	cfg, kubeconfig, err := d.startControlPlane(ctx, assets)
	if err != nil {
		return err
	}
	if err := d.startDriver(ctx); err != nil {
		return err
	}
	d.step("building csi-attacher (go build -o %s ., started in the background)", bin)
	if err := build(); err != nil {
		return err
	}
	if err := d.startAttacher(ctx, bin, kubeconfig); err != nil {
		return err
	}
	if err := d.startWatching(ctx, cfg); err != nil {
		return err
	}
	attachTime, err := d.attach(ctx)
	if err != nil {
		return err
	}
	detachTime, err := d.detach(ctx)
	if err != nil {
		return err
	}
	if err := d.deletePV(ctx); err != nil {
		return err
	}

	d.showMetrics(ctx)
	d.println("")
	d.println("Demo finished: attached in %d ms, detached in %d ms", attachTime.Milliseconds(), detachTime.Milliseconds())
	return nil
}

func (d *demo) header() {
	d.println("csi-attacher demo")
	d.println("=================")
	d.println("A local kube-apiserver (envtest), the fake CSI driver %q", driverName)
	d.println("served in this process, and the csi-attacher binary built from this repository.")
	d.println("One volume is attached to a node and detached again; every change the attacher")
	d.println("makes is printed as it happens.")
	d.println("")
}
