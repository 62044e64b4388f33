package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/volume"
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

// showMetrics prints the attacher's own metrics that the run moved: what an
// operator would see on a dashboard. A failure to scrape is only reported.
func (d *demo) showMetrics(ctx context.Context) {
	d.step("the attacher's metrics (%s), csi_attacher_* samples that are not zero:", d.metricsURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.metricsURL, nil)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "csi_attacher_") || strings.HasSuffix(line, " 0") || strings.Contains(line, "_bucket{") {
			continue
		}
		d.detail("%s", line)
	}
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

// ---------------------------------------------------------------------------
// Setup.

// startControlPlane starts kube-apiserver and etcd and writes a kubeconfig.
func (d *demo) startControlPlane(ctx context.Context, assets string) (*rest.Config, string, error) {
	d.step("starting the control plane (kube-apiserver and etcd from %s)", assets)
	env := testbed.NewEnvironment(assets, time.Minute)
	began := time.Now()
	cfg, err := env.Start()
	// Stop also cleans up after a partial start.
	d.defer_(func() {
		d.say("stopping the control plane")
		if err := env.Stop(); err != nil {
			d.say("warning: stopping the control plane: %v", err)
		}
	})
	if err != nil {
		return nil, "", fmt.Errorf("starting the control plane: %w", err)
	}
	if ctx.Err() != nil {
		return nil, "", errInterrupted
	}
	kubeconfig := filepath.Join(d.tmpDir, "kubeconfig")
	if err := testbed.WriteKubeconfig(env, "demo", kubeconfig); err != nil {
		return nil, "", err
	}
	d.detail("control plane ready at %s after %s", cfg.Host, since(began))
	d.detail("kubeconfig: %s", kubeconfig)
	d.detail("(admission plugin StorageObjectInUseProtection is off: no kube-controller-manager")
	d.detail(" runs here to remove its kubernetes.io/pv-protection finalizer)")
	return cfg, kubeconfig, nil
}

// startDriver serves the fake CSI driver on a unix socket in the temporary
// directory and prints every call it receives.
func (d *demo) startDriver(ctx context.Context) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	socket := filepath.Join(d.tmpDir, testbed.SocketName)
	d.step("starting the fake CSI driver %s on %s", driverName, socket)
	cfg := fake.DefaultConfig(driverName)
	var probes sync.Map // code -> printed once
	cfg.OnCall = func(c fake.Call) {
		// The attacher probes the driver every few seconds; print each
		// kind of answer once so the interesting calls stand out.
		if c.Method == fake.MethodProbe {
			if _, seen := probes.LoadOrStore(c.Code, true); seen {
				return
			}
		}
		// Calls go through the same queue as the object changes, so that
		// they are printed in the order they happened.
		ev := objEvent{at: time.Now(), call: &c}
		select {
		case d.events <- ev:
		default: // nobody is reading the queue: the demo is ending
			d.printCall(ev)
		}
	}
	d.driver = fake.New(cfg)
	if err := d.driver.Start(socket); err != nil {
		return fmt.Errorf("starting the fake CSI driver: %w", err)
	}
	d.defer_(func() {
		d.say("stopping the fake CSI driver")
		d.driver.Stop()
	})
	return nil
}

// formatCall prints one driver call without its secrets, e.g.
// "ControllerPublishVolume volume=vol-demo-1 node=demo-node-id -> OK".
func formatCall(c fake.Call) string {
	var b strings.Builder
	b.WriteString(c.Method)
	if c.VolumeID != "" {
		fmt.Fprintf(&b, " volume=%s", c.VolumeID)
	}
	if c.NodeID != "" {
		fmt.Fprintf(&b, " node=%s", c.NodeID)
	}
	fmt.Fprintf(&b, " -> %s", c.Code)
	if c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish {
		fmt.Fprintf(&b, " (%s)", c.End.Sub(c.Start).Round(10*time.Microsecond))
	}
	if c.Method == fake.MethodProbe {
		b.WriteString(" (repeated probes are not shown)")
	}
	return b.String()
}

// buildAttacher runs `go build` in the background; the function it returns
// waits for the build and prints how long it took. If the demo ends first,
// cleanup stops the build.
func (d *demo) buildAttacher(ctx context.Context, root, bin string) func() error {
	buildCtx, cancel := context.WithCancel(ctx)
	wait := testbed.BuildAttacher(buildCtx, root, bin)
	d.defer_(func() {
		cancel()
		_, _ = wait()
	})
	return func() error {
		took, err := wait()
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case err != nil:
			return err
		}
		d.detail("built in %s", took.Round(10*time.Millisecond))
		return nil
	}
}

// startAttacher starts the attacher binary and waits for its /readyz.
func (d *demo) startAttacher(ctx context.Context, bin, kubeconfig string) error {
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return err
	}
	readyz := endpoints.ReadyzURL()
	d.metricsURL = endpoints.MetricsURL()
	args := slices.Concat([]string{
		"--csi-address=" + filepath.Join(d.tmpDir, testbed.SocketName),
		"--kubeconfig=" + kubeconfig,
		"--leader-election=false",
	}, endpoints.Flags(), []string{"--v=2"})
	d.step("starting csi-attacher %s", strings.Join(args, " "))
	d.detail("attacher log: %s", d.logPath)

	logFile, err := os.Create(d.logPath)
	if err != nil {
		return fmt.Errorf("creating the attacher log: %w", err)
	}
	var out io.WriteCloser = logFile
	if d.verbose {
		out = &echoLog{file: logFile, echo: &lineWriter{line: func(s string) { d.detail("attacher: %s", s) }}}
	}
	began := time.Now()
	a, err := testbed.StartAttacher(bin, args, out)
	if err != nil {
		return err
	}
	d.attacher = a
	d.attacherDone = a.Done()
	d.defer_(d.stopAttacher)

	err = d.waitFor(ctx, "csi-attacher was not ready (/readyz) within "+stepTimeout.String(), func() bool {
		return testbed.Ready(readyz)
	})
	if err != nil {
		return err
	}
	d.detail("attacher ready (%s returned 200 after %s)", readyz, since(began))
	return nil
}

// stopAttacher sends SIGTERM and waits for the attacher's graceful shutdown.
func (d *demo) stopAttacher() {
	select {
	case <-d.attacherDone:
		d.say("csi-attacher had already exited: %s", testbed.ExitStatus(d.attacher.Err()))
		return
	default:
	}
	d.say("stopping csi-attacher (SIGTERM)")
	began := time.Now()
	if d.attacher.Stop(attacherStopTimeout) {
		d.say("csi-attacher did not stop within %s, killing it", attacherStopTimeout)
	}
	d.say("csi-attacher stopped after %s: %s", since(began), testbed.ExitStatus(d.attacher.Err()))
}

// ---------------------------------------------------------------------------
// Observing the objects.

// vaState is what the demo shows of the VolumeAttachment.
type vaState struct {
	exists             bool
	deleting           bool
	finalizers         []string
	nodeID             string
	attached           bool
	attachmentMetadata map[string]string
	attachError        string
	detachError        string
}

// pvState is what the demo shows of the PersistentVolume.
type pvState struct {
	exists     bool
	deleting   bool
	finalizers []string
}

// objEvent is the current state of the VolumeAttachment or the
// PersistentVolume. obj is nil when a list found nothing; a deleted object
// comes with its last state, so that the removal of the last finalizer is
// shown too.
//
// A driver call travels the same way, in call.
type objEvent struct {
	at      time.Time // when the change arrived
	obj     client.Object
	deleted bool
	pv      bool // which object: the PV (true) or the VA
	call    *fake.Call
}

// startWatching lists and watches the two objects by name; the events are
// applied by waitFor on the main goroutine, so the output follows the order
// in which the API server reported the changes.
func (d *demo) startWatching(ctx context.Context, cfg *rest.Config) error {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return fmt.Errorf("creating the API client: %w", err)
	}
	d.c = c
	wctx, cancel := context.WithCancel(ctx)
	d.defer_(cancel)
	go d.watchLoop(wctx, vaName, false, func() client.ObjectList { return &storagev1.VolumeAttachmentList{} })
	go d.watchLoop(wctx, pvName, true, func() client.ObjectList { return &corev1.PersistentVolumeList{} })
	return nil
}

// watchLoop lists one object by name, then watches it from the list's
// resource version; it starts over whenever the watch ends.
func (d *demo) watchLoop(ctx context.Context, name string, pv bool, newList func() client.ObjectList) {
	sel := fields.OneTermEqualSelector("metadata.name", name)
	send := func(obj client.Object, deleted bool) bool {
		select {
		case d.events <- objEvent{at: time.Now(), obj: obj, deleted: deleted, pv: pv}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pause := func() bool {
		select {
		case <-time.After(200 * time.Millisecond):
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		list := newList()
		if err := d.c.List(ctx, list, client.MatchingFieldsSelector{Selector: sel}); err != nil {
			pause()
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return
		}
		var current client.Object
		if len(items) > 0 {
			current, _ = items[0].(client.Object)
		}
		if !send(current, false) {
			return
		}
		w, err := d.c.Watch(ctx, newList(), &client.ListOptions{
			FieldSelector: sel,
			Raw:           &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()},
		})
		if err != nil {
			pause()
			continue
		}
	events:
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				obj, _ := ev.Object.(client.Object)
				if !send(obj, false) {
					break events
				}
			case watch.Deleted:
				obj, _ := ev.Object.(client.Object)
				if !send(obj, true) {
					break events
				}
			case watch.Error:
				break events // list again
			}
		}
		w.Stop()
	}
}

// apply records a new state and prints what changed. A deleted object is
// applied twice: its last state, then its absence.
func (d *demo) apply(ev objEvent) {
	if ev.call != nil {
		d.printCall(ev)
		return
	}
	d.eventAt = ev.at
	if ev.pv {
		pv, _ := ev.obj.(*corev1.PersistentVolume)
		if pv != nil {
			d.applyPV(pv)
		}
		if ev.deleted || pv == nil {
			d.applyPV(nil)
		}
		return
	}
	va, _ := ev.obj.(*storagev1.VolumeAttachment)
	if va != nil {
		d.applyVA(va)
	}
	if ev.deleted || va == nil {
		d.applyVA(nil)
	}
}

func (d *demo) applyVA(va *storagev1.VolumeAttachment) {
	var s vaState
	if va != nil {
		s = vaState{
			exists:             true,
			deleting:           va.DeletionTimestamp != nil,
			finalizers:         va.Finalizers,
			nodeID:             va.Annotations[volume.NodeIDAnnotation],
			attached:           va.Status.Attached,
			attachmentMetadata: va.Status.AttachmentMetadata,
		}
		if e := va.Status.AttachError; e != nil {
			s.attachError = e.Message
		}
		if e := va.Status.DetachError; e != nil {
			s.detachError = e.Message
		}
	}
	old := d.va
	d.va = s
	obj := "VolumeAttachment " + vaName
	if !s.exists {
		if old.exists {
			d.vaGoneAt = d.eventAt
			d.gone(obj, old.finalizers)
		}
		return
	}
	if !slices.Equal(old.finalizers, s.finalizers) {
		d.event(obj, "finalizers=%s", formatList(s.finalizers))
	}
	if old.nodeID != s.nodeID {
		d.event(obj, "annotation %s=%q", volume.NodeIDAnnotation, s.nodeID)
	}
	if old.attachError != s.attachError && s.attachError != "" {
		d.event(obj, "status.attachError=%q", s.attachError)
	}
	if old.detachError != s.detachError && s.detachError != "" {
		d.event(obj, "status.detachError=%q", s.detachError)
	}
	if !maps.Equal(old.attachmentMetadata, s.attachmentMetadata) {
		d.event(obj, "status.attachmentMetadata=%s", formatMap(s.attachmentMetadata))
	}
	if old.attached != s.attached {
		if s.attached && d.attachedAt.IsZero() {
			d.attachedAt = d.eventAt
		}
		d.event(obj, "status.attached=%t", s.attached)
	}
	if !old.deleting && s.deleting {
		d.event(obj, "deletionTimestamp set, the finalizer holds it until the volume is detached")
	}
}

func (d *demo) applyPV(pv *corev1.PersistentVolume) {
	var s pvState
	if pv != nil {
		s = pvState{exists: true, deleting: pv.DeletionTimestamp != nil, finalizers: pv.Finalizers}
	}
	old := d.pv
	d.pv = s
	obj := "PersistentVolume " + pvName
	if !s.exists {
		if old.exists {
			d.gone(obj, old.finalizers)
		}
		return
	}
	if !slices.Equal(old.finalizers, s.finalizers) {
		d.event(obj, "finalizers=%s", formatList(s.finalizers))
	}
	if !old.deleting && s.deleting {
		d.event(obj, "deletionTimestamp set, waiting for the finalizers to be removed")
	}
}

// gone reports that a watched object was deleted. The API server removes an
// object in the same update that takes its last finalizer away, and the
// deletion event carries the state before that update, so the removal of
// the finalizers is shown here.
func (d *demo) gone(obj string, lastFinalizers []string) {
	if len(lastFinalizers) > 0 {
		d.event(obj, "finalizers=[] (%s removed)", strings.Join(lastFinalizers, ", "))
	}
	d.event(obj, "deleted, gone from the API server")
}

// waitFor applies object events until cond holds. It fails with failure
// after stepTimeout, when ctx ends or when the attacher exits.
func (d *demo) waitFor(ctx context.Context, failure string, cond func() bool) error {
	timeout := time.NewTimer(stepTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case ev := <-d.events:
			d.apply(ev)
		case <-tick.C:
		case <-d.attacherDone: // nil, never ready, before the attacher starts
			return fmt.Errorf("csi-attacher exited unexpectedly (%s) while waiting: %s", testbed.ExitStatus(d.attacher.Err()), failure)
		case <-timeout.C:
			return errors.New(failure)
		case <-ctx.Done():
			return errInterrupted
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// The scenario.

// attach creates the objects and waits for the attacher to attach the volume.
func (d *demo) attach(ctx context.Context) (time.Duration, error) {
	d.step("creating a CSINode, a PersistentVolume and a VolumeAttachment")
	csiNode := testbed.CSINode(nodeName, storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID})
	if err := d.c.Create(ctx, csiNode); err != nil {
		return 0, fmt.Errorf("creating CSINode %s: %w", nodeName, err)
	}
	d.detail("created CSINode %s: driver %s has nodeID %s", nodeName, driverName, nodeID)

	pv := testbed.PV(pvName, driverName, volumeID)
	if err := d.c.Create(ctx, pv); err != nil {
		return 0, fmt.Errorf("creating PersistentVolume %s: %w", pvName, err)
	}
	d.detail("created PersistentVolume %s: CSI driver %s, volumeHandle %s, 1Gi, RWO, ext4", pvName, driverName, volumeID)

	va := testbed.VA(vaName, driverName, nodeName, pvName)
	created := time.Now()
	if err := d.c.Create(ctx, va); err != nil {
		return 0, fmt.Errorf("creating VolumeAttachment %s: %w", vaName, err)
	}
	d.detail("created VolumeAttachment %s: attacher %s, node %s, PersistentVolume %s", vaName, driverName, nodeName, pvName)

	if err := d.waitFor(ctx, "VolumeAttachment "+vaName+" was not attached within "+stepTimeout.String(),
		func() bool { return d.va.attached }); err != nil {
		return 0, err
	}
	attachTime := d.attachedAt.Sub(created)
	finalizer := volume.FinalizerName(driverName)
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" did not get the finalizer "+finalizer+" within "+stepTimeout.String(),
		func() bool { return slices.Contains(d.pv.finalizers, finalizer) }); err != nil {
		return 0, err
	}
	d.detail("attached %d ms after the VolumeAttachment was created", attachTime.Milliseconds())

	d.printPublishRecord()
	d.printVAStatus(ctx)
	return attachTime, nil
}

// printPublishRecord shows what the driver was asked to do.
func (d *demo) printPublishRecord() {
	var call *fake.Call
	for _, c := range d.driver.Calls() {
		if c.Method == fake.MethodPublish && c.VolumeID == volumeID {
			call = &c
		}
	}
	if call == nil {
		d.println("\n  The driver has no ControllerPublishVolume call for %s on record.", volumeID)
		return
	}
	capability := "none"
	if vc := call.Capability; vc != nil {
		capability = vc.GetAccessMode().GetMode().String()
		if m := vc.GetMount(); m != nil {
			capability += ", mount fsType=" + m.GetFsType()
		} else if vc.GetBlock() != nil {
			capability += ", block"
		}
	}
	d.table("Driver record of the ControllerPublishVolume call:", [][2]string{
		{"volume ID", call.VolumeID},
		{"node ID", call.NodeID},
		{"readonly", fmt.Sprint(call.ReadOnly)},
		{"capability", capability},
		{"volume context", formatMap(call.VolumeContext)},
		{"result", fmt.Sprintf("%s in %s", call.Code, call.End.Sub(call.Start).Round(10*time.Microsecond))},
		{"published to", formatList(d.driver.Published(volumeID))},
	})
}

// printVAStatus shows the VolumeAttachment as the API server has it.
func (d *demo) printVAStatus(ctx context.Context) {
	va := &storagev1.VolumeAttachment{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: vaName}, va); err != nil {
		d.println("\n  Could not read VolumeAttachment %s: %v\n", vaName, err)
		return
	}
	attachError := "none"
	if e := va.Status.AttachError; e != nil {
		attachError = e.Message
	}
	d.table("VolumeAttachment "+vaName+" as stored by the API server:", [][2]string{
		{"spec.attacher", va.Spec.Attacher},
		{"spec.nodeName", va.Spec.NodeName},
		{"finalizers", formatList(va.Finalizers)},
		{"node-id annotation", va.Annotations[volume.NodeIDAnnotation]},
		{"status.attached", fmt.Sprint(va.Status.Attached)},
		{"attachmentMetadata", formatMap(va.Status.AttachmentMetadata)},
		{"attachError", attachError},
	})
	d.println("")
}

// detach deletes the VolumeAttachment and waits until it is gone.
func (d *demo) detach(ctx context.Context) (time.Duration, error) {
	d.step("deleting VolumeAttachment %s", vaName)
	began := time.Now()
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: vaName}}
	if err := d.c.Delete(ctx, va); err != nil {
		return 0, fmt.Errorf("deleting VolumeAttachment %s: %w", vaName, err)
	}
	if err := d.waitFor(ctx, "the driver got no ControllerUnpublishVolume call for "+volumeID+" within "+stepTimeout.String(),
		func() bool { return d.driver.CallCount(fake.MethodUnpublish, volumeID) > 0 }); err != nil {
		return 0, err
	}
	if err := d.waitFor(ctx, "VolumeAttachment "+vaName+" was not detached and removed within "+stepTimeout.String(),
		func() bool { return !d.va.exists }); err != nil {
		return 0, err
	}
	detachTime := d.vaGoneAt.Sub(began)
	d.detail("detached and removed %d ms after the delete", detachTime.Milliseconds())
	return detachTime, nil
}

// deletePV deletes the PersistentVolume, waits until the attacher has
// released it, and checks that the driver has nothing published.
func (d *demo) deletePV(ctx context.Context) error {
	d.step("deleting PersistentVolume %s", pvName)
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName}}
	if err := d.c.Delete(ctx, pv); err != nil {
		return fmt.Errorf("deleting PersistentVolume %s: %w", pvName, err)
	}
	finalizer := volume.FinalizerName(driverName)
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" still had the finalizer "+finalizer+" after "+stepTimeout.String(),
		func() bool { return !slices.Contains(d.pv.finalizers, finalizer) }); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" was not removed within "+stepTimeout.String(),
		func() bool { return !d.pv.exists }); err != nil {
		return err
	}
	published := d.driver.Published(volumeID)
	d.detail("driver: Published(%q) = %s", volumeID, formatList(published))
	if len(published) > 0 {
		return fmt.Errorf("volume %s is still published to %v after the detach", volumeID, published)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Cleanup and failure.

// defer_ registers a cleanup step; cleanup runs them in reverse order.
func (d *demo) defer_(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) cleanup(ok bool) {
	if len(d.cleanups) > 0 || d.tmpDir != "" {
		d.println("")
		d.step("cleaning up")
	}
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	if d.tmpDir == "" {
		return
	}
	// The directory is kept when there is something to look at: the log of
	// an attacher that ran in a failed demo, or on request.
	if (ok || d.attacher == nil) && os.Getenv("DEMO_KEEP") != "1" {
		_ = os.RemoveAll(d.tmpDir)
		d.say("removed %s", d.tmpDir)
		return
	}
	// The binary is large and can be rebuilt; the rest is small.
	_ = os.Remove(filepath.Join(d.tmpDir, "csi-attacher"))
	d.say("kept %s (kubeconfig, attacher log)", d.tmpDir)
}

// fail prints the error and, if the attacher ran, the end of its log as it
// was when the failure was detected.
func (d *demo) fail(err error, logLines []string, logErr error) {
	d.println("")
	if errors.Is(err, errInterrupted) {
		d.println("Demo interrupted.")
		return
	}
	if d.attacher == nil {
		d.println("Demo failed: %v", err)
		return
	}
	d.println("Demo failed: %v; attacher log: %s", err, d.logPath)
	if logErr != nil {
		d.println("  (could not read the attacher log: %v)", logErr)
		return
	}
	d.println("Last %d lines of the attacher log before the demo stopped it:", len(logLines))
	for _, l := range logLines {
		d.println("  %s", l)
	}
}

// ---------------------------------------------------------------------------
// Output.

// println prints a line without a time stamp.
func (d *demo) println(format string, args ...any) {
	d.out.Lock()
	defer d.out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// stamped prints a line after the time since the demo started.
func (d *demo) stamped(format string, args ...any) {
	d.stampedAt(time.Now(), format, args...)
}

// stampedAt prints a line after the time from the start of the demo to at.
func (d *demo) stampedAt(at time.Time, format string, args ...any) {
	elapsed := at.Sub(d.start).Seconds()
	d.out.Lock()
	defer d.out.Unlock()
	fmt.Printf("[%6.2fs] %s\n", elapsed, fmt.Sprintf(format, args...))
}

// step starts a section.
func (d *demo) step(format string, args ...any) { d.stamped("==> "+format, args...) }

// detail is a line inside a section.
func (d *demo) detail(format string, args ...any) { d.stamped("    "+format, args...) }

// say is a plain progress line.
func (d *demo) say(format string, args ...any) { d.detail(format, args...) }

// event prints a change of one of the watched objects, stamped with the
// arrival of the event being applied. Main goroutine only.
func (d *demo) event(object, format string, args ...any) {
	d.stampedAt(d.eventAt, "    %-27s %s", object+":", fmt.Sprintf(format, args...))
}

// printCall prints a driver call, stamped with the time it ended.
func (d *demo) printCall(ev objEvent) {
	d.stampedAt(ev.at, "    driver: %s", formatCall(*ev.call))
}

// table prints a title and aligned key/value rows in one piece, so that no
// other output lands in the middle.
func (d *demo) table(title string, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s", title)
	for _, r := range rows {
		fmt.Fprintf(&b, "\n    %-*s  %s", width, r[0], r[1])
	}
	d.println("%s", b.String())
}

func formatList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func formatMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+": "+m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(10 * time.Millisecond)
}

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// echoLog writes the attacher's output to its log file and echoes every
// line (DEMO_VERBOSE=1). Close, when the attacher has exited, echoes an
// unterminated last line and closes the file.
type echoLog struct {
	file *os.File
	echo *lineWriter
}

func (l *echoLog) Write(p []byte) (int, error) {
	return io.MultiWriter(l.file, l.echo).Write(p)
}

func (l *echoLog) Close() error {
	l.echo.flush()
	return l.file.Close()
}
