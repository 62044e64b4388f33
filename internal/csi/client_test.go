package csi_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

const driverName = "test.csi.example.com"

// socketPath returns a short socket path: t.TempDir() can exceed the
// 108-byte limit of unix socket paths.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "csi.sock")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects log lines from a funcr logger at the most verbose level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.buf.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	drv    *fake.Driver
	socket string
	client *csi.Client
	reg    *prometheus.Registry
	logs   *logBuffer
}

func startDriver(t *testing.T, cfg fake.Config) (*fake.Driver, string) {
	t.Helper()
	sock := socketPath(t)
	drv := fake.New(cfg)
	if err := drv.Start(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drv.Stop)
	return drv, sock
}

func connect(t *testing.T, cfg fake.Config, mutate ...func(*csi.Options)) env {
	t.Helper()
	drv, sock := startDriver(t, cfg)
	e := env{drv: drv, socket: sock, reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	opts := csi.Options{Address: sock, Timeout: 2 * time.Second, ProbeTimeout: time.Second, Logger: e.logs.logger(), Registry: e.reg}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := csi.Connect(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.client = c
	return e
}

func mountCap() *csipb.VolumeCapability {
	return &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "xfs", MountFlags: []string{"noatime"}}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER},
	}
}

func TestConnectReadsIdentityAndCapabilities(t *testing.T) {
	noPublish := fake.DefaultConfig(driverName)
	noPublish.PublishUnpublish = false
	noPublish.ListVolumesPublishedNodes = false
	for _, tc := range []struct {
		name string
		cfg  fake.Config
		want csi.Capabilities
	}{
		{"everything", fake.DefaultConfig(driverName), csi.Capabilities{
			ControllerService: true, PublishUnpublish: true, PublishReadonly: true,
			ListVolumes: true, ListVolumesPublishedNodes: true, SingleNodeMultiWriter: true,
		}},
		{"no publish", noPublish, csi.Capabilities{
			ControllerService: true, PublishReadonly: true, ListVolumes: true, SingleNodeMultiWriter: true,
		}},
		// Without CONTROLLER_SERVICE the controller capabilities are not asked for.
		{"no controller service", fake.Config{Name: driverName, PublishUnpublish: true}, csi.Capabilities{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := connect(t, tc.cfg)
			g.Expect(e.client.DriverName()).To(Equal(driverName))
			g.Expect(e.client.VendorVersion()).To(Equal(fake.DefaultVendorVersion))
			g.Expect(e.client.Capabilities()).To(Equal(tc.want))
			g.Expect(e.client.Ready()).To(BeTrue())
			g.Expect(e.client.ReadyzCheck(nil)).To(Succeed())
			g.Expect(e.client.Endpoint().String()).To(Equal("unix://" + e.socket))
			g.Expect(e.drv.CallCount(fake.MethodControllerGetCapabilities, "")).To(Equal(map[bool]int{true: 1, false: 0}[tc.cfg.ControllerService]))
		})
	}
}

func TestConnectAcceptsEveryUnixForm(t *testing.T) {
	_, sock := startDriver(t, fake.DefaultConfig(driverName))
	for _, addr := range []string{sock, "unix://" + sock, "unix:" + sock} {
		g := NewWithT(t)
		c, err := csi.Connect(testCtx(t), csi.Options{Address: addr})
		g.Expect(err).NotTo(HaveOccurred(), addr)
		g.Expect(c.DriverName()).To(Equal(driverName))
		g.Expect(c.Close()).To(Succeed())
	}
}

func TestConnectErrors(t *testing.T) {
	g := NewWithT(t)
	_, err := csi.Connect(testCtx(t), csi.Options{Address: "relative.sock"})
	g.Expect(err).To(MatchError(ContainSubstring(`CSI address "relative.sock"`)))

	for _, tc := range []struct {
		name    string
		method  string
		code    codes.Code
		wantErr string
	}{
		// Probe errors other than "not up yet" are final: the driver is broken.
		{"probe internal", fake.MethodProbe, codes.Internal, "probing CSI driver"},
		{"probe unimplemented", fake.MethodProbe, codes.Unimplemented, "probing CSI driver"},
		{"plugin info", fake.MethodGetPluginInfo, codes.Internal, "GetPluginInfo"},
		{"plugin info unavailable", fake.MethodGetPluginInfo, codes.Unavailable, "GetPluginInfo"},
		{"plugin capabilities", fake.MethodGetPluginCapabilities, codes.Internal, "GetPluginCapabilities"},
		{"controller capabilities", fake.MethodControllerGetCapabilities, codes.Internal, "ControllerGetCapabilities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			drv, sock := startDriver(t, fake.DefaultConfig(driverName))
			drv.InjectError(tc.method, "", tc.code, 0)
			began := time.Now()
			_, err := csi.Connect(testCtx(t), csi.Options{Address: sock})
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			g.Expect(err.Error()).To(ContainSubstring(sock))
			code, ok := csi.Code(err)
			g.Expect(ok).To(BeTrue())
			g.Expect(code).To(Equal(tc.code))
			g.Expect(time.Since(began)).To(BeNumerically("<", 3*time.Second))
		})
	}
}

func TestConnectGivesUpWhenContextEnds(t *testing.T) {
	g := NewWithT(t)
	sock := socketPath(t) // nobody listens
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	logs := &logBuffer{}
	_, err := csi.Connect(ctx, csi.Options{Address: sock, Logger: logs.logger()})
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(err.Error()).To(ContainSubstring("waiting for CSI driver at unix://" + sock))
	g.Expect(logs.String()).To(ContainSubstring(`"msg"="Waiting for the CSI driver to become ready" "address"="unix://` + sock))
}

func TestConnectWaitsForLateDriver(t *testing.T) {
	g := NewWithT(t)
	sock := socketPath(t)
	logs := &logBuffer{}
	type result struct {
		c   *csi.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := csi.Connect(testCtx(t), csi.Options{Address: sock, ProbeTimeout: time.Second, Logger: logs.logger()})
		done <- result{c, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	g.Expect(done).NotTo(Receive(), "Connect must wait for the driver")
	drv := fake.New(fake.DefaultConfig(driverName))
	g.Expect(drv.Start(sock)).To(Succeed())
	t.Cleanup(drv.Stop)

	var r result
	g.Eventually(done).WithTimeout(10 * time.Second).Should(Receive(&r))
	g.Expect(r.err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = r.c.Close() })
	g.Expect(r.c.DriverName()).To(Equal(driverName))
	g.Expect(logs.String()).To(ContainSubstring("Waiting for the CSI driver to become ready"))
}

func TestConnectWaitsUntilReady(t *testing.T) {
	g := NewWithT(t)
	drv, sock := startDriver(t, fake.DefaultConfig(driverName))
	drv.SetReady(false)
	done := make(chan error, 1)
	go func() {
		c, err := csi.Connect(testCtx(t), csi.Options{Address: sock})
		if err == nil {
			_ = c.Close()
		}
		done <- err
	}()
	g.Consistently(done).WithTimeout(1500 * time.Millisecond).ShouldNot(Receive())
	g.Expect(drv.CallCount(fake.MethodProbe, "")).To(BeNumerically(">=", 2))
	g.Expect(drv.CallCount(fake.MethodGetPluginInfo, "")).To(BeZero())
	drv.SetReady(true)
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
}

func TestConnectWaitsThroughSlowProbes(t *testing.T) {
	g := NewWithT(t)
	drv, sock := startDriver(t, fake.DefaultConfig(driverName))
	drv.SetLatency(fake.MethodProbe, "", time.Second)
	done := make(chan error, 1)
	go func() {
		c, err := csi.Connect(testCtx(t), csi.Options{Address: sock, ProbeTimeout: 200 * time.Millisecond})
		if err == nil {
			_ = c.Close()
		}
		done <- err
	}()
	g.Eventually(func() int { return drv.CallCount(fake.MethodProbe, "") }).WithTimeout(5 * time.Second).Should(BeNumerically(">=", 2))
	g.Expect(done).NotTo(Receive())
	drv.SetLatency(fake.MethodProbe, "", 0)
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
}

func TestPublishSendsRequestUnchanged(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	e.drv.SetPublishContext("vol-1", map[string]string{"lun": "7", "target": "iqn.x"})
	req := csi.PublishRequest{
		VolumeID:      "vol-1",
		NodeID:        "node-1",
		Capability:    mountCap(),
		ReadOnly:      true,
		Secrets:       map[string]string{"password": "hunter2", "user": "admin"},
		VolumeContext: map[string]string{"pool": "fast"},
	}
	pc, err := e.client.Publish(testCtx(t), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pc).To(Equal(map[string]string{"lun": "7", "target": "iqn.x"}))

	pc, err = e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "vol-2", NodeID: "node-1", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pc).To(Equal(map[string]string{"devicePath": "/dev/fake/vol-2"}))

	calls := e.drv.Calls()
	var publishes []fake.Call
	for _, c := range calls {
		if c.Method == fake.MethodPublish {
			publishes = append(publishes, c)
		}
	}
	g.Expect(publishes).To(HaveLen(2))
	got := publishes[0]
	g.Expect(got.VolumeID).To(Equal("vol-1"))
	g.Expect(got.NodeID).To(Equal("node-1"))
	g.Expect(got.ReadOnly).To(BeTrue())
	g.Expect(got.Secrets).To(Equal(req.Secrets))
	g.Expect(got.VolumeContext).To(Equal(req.VolumeContext))
	g.Expect(proto.Equal(got.Capability, req.Capability)).To(BeTrue(), "capability %v", got.Capability)
	g.Expect(publishes[1].Secrets).To(BeNil())
	g.Expect(publishes[1].VolumeContext).To(BeNil())
	g.Expect(publishes[1].ReadOnly).To(BeFalse())
	g.Expect(e.drv.Publications()).To(Equal(map[string][]string{"vol-1": {"node-1"}, "vol-2": {"node-1"}}))

	g.Expect(e.client.Unpublish(testCtx(t), csi.UnpublishRequest{VolumeID: "vol-1", NodeID: "node-1", Secrets: map[string]string{"token": "t"}})).To(Succeed())
	calls = e.drv.Calls()
	last := calls[len(calls)-1]
	g.Expect(last.Method).To(Equal(fake.MethodUnpublish))
	g.Expect(last.VolumeID).To(Equal("vol-1"))
	g.Expect(last.NodeID).To(Equal("node-1"))
	g.Expect(last.Secrets).To(Equal(map[string]string{"token": "t"}))
	g.Expect(e.drv.Published("vol-1")).To(BeEmpty())
}

func TestCallErrors(t *testing.T) {
	e := connect(t, fake.DefaultConfig(driverName))
	for _, tc := range []struct {
		code  codes.Code
		final bool
	}{
		{codes.Internal, true},
		{codes.NotFound, true},
		{codes.InvalidArgument, true},
		{codes.FailedPrecondition, true},
		{codes.Unavailable, false},
		{codes.ResourceExhausted, false},
		{codes.Aborted, false},
		{codes.DeadlineExceeded, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			g := NewWithT(t)
			e.drv.InjectError(fake.MethodPublish, "vol-err", tc.code, 1)
			e.drv.InjectError(fake.MethodUnpublish, "vol-err", tc.code, 1)

			_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "vol-err", NodeID: "n", Capability: mountCap()})
			g.Expect(err).To(MatchError(ContainSubstring(`ControllerPublishVolume of volume "vol-err" to node "n"`)))
			code, ok := csi.Code(err)
			g.Expect(ok).To(BeTrue())
			g.Expect(code).To(Equal(tc.code))
			g.Expect(csi.IsFinalError(err)).To(Equal(tc.final))

			err = e.client.Unpublish(testCtx(t), csi.UnpublishRequest{VolumeID: "vol-err", NodeID: "n"})
			g.Expect(err).To(MatchError(ContainSubstring(`ControllerUnpublishVolume of volume "vol-err" from node "n"`)))
			code, _ = csi.Code(err)
			g.Expect(code).To(Equal(tc.code))
			g.Expect(csi.IsFinalError(err)).To(Equal(tc.final))
		})
	}
	// The driver's own validation arrives as InvalidArgument, final.
	g := NewWithT(t)
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n"})
	code, _ := csi.Code(err)
	g.Expect(code).To(Equal(codes.InvalidArgument))
	g.Expect(csi.IsFinalError(err)).To(BeTrue())
}

func TestAttachedButTimedOut(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	e.drv.InjectErrorAfter(fake.MethodPublish, "", codes.DeadlineExceeded, 1)
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(csi.IsFinalError(err)).To(BeFalse())
	g.Expect(e.drv.Published("v")).To(Equal([]string{"n"}), "the volume is attached although the caller saw an error")
}

func TestTimeout(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName), func(o *csi.Options) { o.Timeout = 300 * time.Millisecond })
	e.drv.SetLatency(fake.MethodPublish, "", 5*time.Second)
	e.drv.SetLatency(fake.MethodUnpublish, "", 5*time.Second)

	began := time.Now()
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(time.Since(began)).To(BeNumerically("<", 2*time.Second))
	code, _ := csi.Code(err)
	g.Expect(code).To(Equal(codes.DeadlineExceeded))
	g.Expect(csi.IsFinalError(err)).To(BeFalse())

	err = e.client.Unpublish(testCtx(t), csi.UnpublishRequest{VolumeID: "v", NodeID: "n"})
	code, _ = csi.Code(err)
	g.Expect(code).To(Equal(codes.DeadlineExceeded))

	// A shorter caller deadline wins over Options.Timeout.
	e.drv.SetLatency(fake.MethodPublish, "", 250*time.Millisecond)
	short, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	_, err = e.client.Publish(short, csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	code, _ = csi.Code(err)
	g.Expect(code).To(Equal(codes.DeadlineExceeded))
	// Latency below the timeout is fine.
	_, err = e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())
}

func TestListVolumes(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	for _, p := range [][2]string{{"a", "n1"}, {"b", "n1"}, {"b", "n2"}, {"c", "n3"}, {"d", "n1"}} {
		_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: p[0], NodeID: p[1], Capability: mountCap()})
		g.Expect(err).NotTo(HaveOccurred())
	}
	e.drv.DetachBehindBack("c", "n3")
	want := map[string][]string{"a": {"n1"}, "b": {"n1", "n2"}, "c": nil, "d": {"n1"}}
	for _, max := range []int32{0, 1, 3, 100} {
		e.drv.ResetCalls()
		got, err := e.client.ListVolumes(testCtx(t), max)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(want))
		pages := 1
		if max > 0 {
			pages = (len(want) + int(max) - 1) / int(max)
		}
		g.Expect(e.drv.CallCount(fake.MethodListVolumes, "")).To(Equal(pages), "max_entries %d", max)
	}
	e.drv.InjectError(fake.MethodListVolumes, "", codes.Aborted, 1)
	_, err := e.client.ListVolumes(testCtx(t), 1)
	g.Expect(err).To(MatchError(ContainSubstring("ListVolumes")))
	code, _ := csi.Code(err)
	g.Expect(code).To(Equal(codes.Aborted))
}

// histogram returns the sample count of csi_sidecar_operations_seconds for
// the given labels, or -1 when that series does not exist.
func histogram(g Gomega, reg *prometheus.Registry, labels map[string]string) int {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != csi.MetricOperationsSeconds {
			continue
		}
		g.Expect(f.GetType()).To(Equal(dto.MetricType_HISTOGRAM))
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			h := m.GetHistogram()
			g.Expect(h.GetBucket()).To(HaveLen(len(csi.OperationsBuckets)))
			return int(h.GetSampleCount())
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	series := func(method, code, driver string) map[string]string {
		return map[string]string{csi.LabelDriverName: driver, csi.LabelMethodName: method, csi.LabelGRPCStatusCode: code}
	}
	// Start-up calls: Probe before the name is known.
	g.Expect(histogram(g, e.reg, series(csipb.Identity_Probe_FullMethodName, "OK", csi.UnknownDriverName))).To(Equal(1))
	g.Expect(histogram(g, e.reg, series(csipb.Identity_GetPluginInfo_FullMethodName, "OK", csi.UnknownDriverName))).To(Equal(1))
	g.Expect(histogram(g, e.reg, series(csipb.Controller_ControllerGetCapabilities_FullMethodName, "OK", driverName))).To(Equal(1))

	publish := csipb.Controller_ControllerPublishVolume_FullMethodName
	for range 3 {
		_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
		g.Expect(err).NotTo(HaveOccurred())
	}
	e.drv.InjectError(fake.MethodPublish, "", codes.ResourceExhausted, 1)
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).To(HaveOccurred())
	g.Expect(histogram(g, e.reg, series(publish, "OK", driverName))).To(Equal(3))
	g.Expect(histogram(g, e.reg, series(publish, "ResourceExhausted", driverName))).To(Equal(1))
	_, err = e.client.Probe(testCtx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(histogram(g, e.reg, series(csipb.Identity_Probe_FullMethodName, "OK", driverName))).To(Equal(1))

	// A second client on the same registry shares the histogram instead of
	// failing to register.
	c2, err := csi.Connect(testCtx(t), csi.Options{Address: e.socket, Registry: e.reg})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c2.Close() }()
	_, err = c2.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(histogram(g, e.reg, series(publish, "OK", driverName))).To(Equal(4))

	// A foreign collector under the same name is an error, not a panic.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: csi.MetricOperationsSeconds, Help: "x"}))
	_, err = csi.Connect(testCtx(t), csi.Options{Address: e.socket, Registry: other})
	g.Expect(err).To(MatchError(ContainSubstring(csi.MetricOperationsSeconds)))
}

// A driver that took over an in-tree plugin gets the reference's extra
// "migrated" label on every series; other drivers never see it (above).
func TestMetricsMigratedLabel(t *testing.T) {
	g := NewWithT(t)
	const gcePD = "pd.csi.storage.gke.io"
	e := connect(t, fake.DefaultConfig(gcePD))
	series := func(method, code, driver, migrated string) map[string]string {
		return map[string]string{csi.LabelDriverName: driver, csi.LabelMethodName: method, csi.LabelGRPCStatusCode: code, csi.LabelMigrated: migrated}
	}
	g.Expect(histogram(g, e.reg, series(csipb.Identity_Probe_FullMethodName, "OK", csi.UnknownDriverName, "false"))).To(Equal(1))

	publish := csipb.Controller_ControllerPublishVolume_FullMethodName
	unpublish := csipb.Controller_ControllerUnpublishVolume_FullMethodName
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v1", NodeID: "n", Capability: mountCap(), Migrated: true})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v2", NodeID: "n", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.client.Unpublish(testCtx(t), csi.UnpublishRequest{VolumeID: "v1", NodeID: "n", Migrated: true})).To(Succeed())

	g.Expect(histogram(g, e.reg, series(publish, "OK", gcePD, "true"))).To(Equal(1))
	g.Expect(histogram(g, e.reg, series(publish, "OK", gcePD, "false"))).To(Equal(1))
	g.Expect(histogram(g, e.reg, series(unpublish, "OK", gcePD, "true"))).To(Equal(1))
	// Without the label the series does not exist for this driver.
	g.Expect(histogram(g, e.reg, map[string]string{
		csi.LabelDriverName: gcePD, csi.LabelMethodName: publish, csi.LabelGRPCStatusCode: "OK",
	})).To(Equal(-1))
}

func TestGRPCLogStripsSecrets(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName), func(o *csi.Options) { o.MaxGRPCLogLength = 20 })
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{
		VolumeID: "vol-secret", NodeID: "n", Capability: mountCap(),
		Secrets: map[string]string{"password": "hunter2"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	e.drv.InjectError(fake.MethodUnpublish, "", codes.Internal, 1)
	err = e.client.Unpublish(testCtx(t), csi.UnpublishRequest{VolumeID: "vol-secret", NodeID: "n", Secrets: map[string]string{"password": "hunter2"}})
	g.Expect(err).To(HaveOccurred())

	out := e.logs.String()
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).To(ContainSubstring(`"msg"="GRPC call" "method"="/csi.v1.Controller/ControllerPublishVolume"`))
	g.Expect(out).To(ContainSubstring(`***stripped***`))
	g.Expect(out).To(ContainSubstring(`vol-secret`))
	g.Expect(out).To(ContainSubstring(`"msg"="GRPC response"`))
	g.Expect(out).To(ContainSubstring(`truncated`))
	g.Expect(out).To(MatchRegexp(`"msg"="GRPC error" "method"="/csi.v1.Controller/ControllerUnpublishVolume" "grpcCode"="Internal"`))
}

func TestGRPCLogLevels(t *testing.T) {
	g := NewWithT(t)
	drv, sock := startDriver(t, fake.DefaultConfig(driverName))
	var mu sync.Mutex
	var lines []string
	// Verbosity 5 is the product default: errors, no bodies.
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{Verbosity: 5})
	c, err := csi.Connect(testCtx(t), csi.Options{Address: sock, Logger: log})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Close() }()
	drv.InjectError(fake.MethodPublish, "", codes.Internal, 1)
	_, err = c.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).To(HaveOccurred())
	_, err = c.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())
	mu.Lock()
	defer mu.Unlock()
	g.Expect(lines).To(HaveLen(1))
	g.Expect(lines[0]).To(ContainSubstring(`"msg"="GRPC error"`))
}

func TestHealthMonitor(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	ctx, cancel := context.WithCancel(testCtx(t))
	stopped := make(chan error, 1)
	mon := e.client.HealthMonitor(100 * time.Millisecond)
	g.Expect(mon.NeedLeaderElection()).To(BeFalse())
	var recovered atomic.Int32
	mon.OnRecovered(func(context.Context) { recovered.Add(1) })
	go func() { stopped <- mon.Start(ctx) }()
	defer func() {
		cancel()
		g.Eventually(stopped).Should(Receive(BeNil()))
	}()
	g.Consistently(e.client.Ready).WithTimeout(300 * time.Millisecond).Should(BeTrue())

	// Driver gone: not ready, one log line, Publish fails transiently.
	e.drv.Stop()
	g.Eventually(e.client.Ready).WithTimeout(5 * time.Second).Should(BeFalse())
	g.Expect(e.client.ReadyzCheck(nil)).To(MatchError(ContainSubstring("unix://" + e.socket)))
	g.Eventually(e.logs.String).Should(ContainSubstring("Lost connection to the CSI driver"))
	_, err := e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(csi.IsFinalError(err)).To(BeFalse())
	time.Sleep(500 * time.Millisecond) // several failed probes
	g.Expect(strings.Count(e.logs.String(), "Lost connection to the CSI driver")).To(Equal(1))
	g.Expect(recovered.Load()).To(BeZero(), "no recovery while the driver is gone")

	// Back: ready again without any call from us, one log line.
	g.Expect(e.drv.Start(e.socket)).To(Succeed())
	g.Eventually(e.client.Ready).WithTimeout(5 * time.Second).Should(BeTrue())
	g.Expect(e.client.ReadyzCheck(nil)).To(Succeed())
	g.Expect(e.logs.String()).To(ContainSubstring("The CSI driver is reachable and ready again"))
	g.Eventually(recovered.Load).Should(BeEquivalentTo(1), "OnRecovered called once the driver is back")
	_, err = e.client.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).NotTo(HaveOccurred())

	// Reachable but not ready.
	e.drv.SetReady(false)
	g.Eventually(e.client.Ready).WithTimeout(5 * time.Second).Should(BeFalse())
	g.Expect(e.logs.String()).To(ContainSubstring("The CSI driver reports it is not ready"))
	e.drv.SetReady(true)
	g.Eventually(e.client.Ready).WithTimeout(5 * time.Second).Should(BeTrue())
	g.Expect(strings.Count(e.logs.String(), "The CSI driver is reachable and ready again")).To(Equal(2))
	g.Consistently(recovered.Load).WithTimeout(300*time.Millisecond).Should(BeEquivalentTo(2), "once per outage")
}

func TestProbe(t *testing.T) {
	g := NewWithT(t)
	e := connect(t, fake.DefaultConfig(driverName))
	ready, err := e.client.Probe(testCtx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeTrue())
	e.drv.SetReady(false)
	ready, err = e.client.Probe(testCtx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeFalse())
	e.drv.SetLatency(fake.MethodProbe, "", 5*time.Second)
	began := time.Now()
	_, err = e.client.Probe(testCtx(t))
	code, _ := csi.Code(err)
	g.Expect(code).To(Equal(codes.DeadlineExceeded))
	g.Expect(time.Since(began)).To(BeNumerically("<", 3*time.Second), "bounded by ProbeTimeout (1s)")
}

func TestClose(t *testing.T) {
	g := NewWithT(t)
	drv, sock := startDriver(t, fake.DefaultConfig(driverName))
	c, err := csi.Connect(testCtx(t), csi.Options{Address: sock})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Close()).To(Succeed())
	g.Expect(c.Ready()).To(BeFalse())
	_, err = c.Publish(testCtx(t), csi.PublishRequest{VolumeID: "v", NodeID: "n", Capability: mountCap()})
	g.Expect(err).To(HaveOccurred())
	g.Expect(drv.CallCount(fake.MethodPublish, "")).To(BeZero())
}
