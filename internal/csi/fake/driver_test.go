package fake_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

type env struct {
	drv    *fake.Driver
	socket string
	ident  csipb.IdentityClient
	ctrl   csipb.ControllerClient
}

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

func start(t *testing.T, cfg fake.Config) env {
	t.Helper()
	sock := socketPath(t)
	drv := fake.New(cfg)
	if err := drv.Start(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drv.Stop)
	conn, err := grpc.NewClient(drv.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return env{drv: drv, socket: sock, ident: csipb.NewIdentityClient(conn), ctrl: csipb.NewControllerClient(conn)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func mountCap() *csipb.VolumeCapability {
	return &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "ext4"}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func publishReq(vol, node string) *csipb.ControllerPublishVolumeRequest {
	return &csipb.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: mountCap()}
}

func TestIdentityAndCapabilities(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig("drv.example.com"))
	info, err := e.ident.GetPluginInfo(ctx(t), &csipb.GetPluginInfoRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.GetName()).To(Equal("drv.example.com"))
	g.Expect(info.GetVendorVersion()).To(Equal(fake.DefaultVendorVersion))

	pcaps, err := e.ident.GetPluginCapabilities(ctx(t), &csipb.GetPluginCapabilitiesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pcaps.GetCapabilities()).To(HaveLen(1))
	g.Expect(pcaps.GetCapabilities()[0].GetService().GetType()).To(Equal(csipb.PluginCapability_Service_CONTROLLER_SERVICE))

	ccaps, err := e.ctrl.ControllerGetCapabilities(ctx(t), &csipb.ControllerGetCapabilitiesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	var types []csipb.ControllerServiceCapability_RPC_Type
	for _, c := range ccaps.GetCapabilities() {
		types = append(types, c.GetRpc().GetType())
	}
	g.Expect(types).To(ConsistOf(
		csipb.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csipb.ControllerServiceCapability_RPC_PUBLISH_READONLY,
		csipb.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csipb.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csipb.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
	))

	probe, err := e.ident.Probe(ctx(t), &csipb.ProbeRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(probe.GetReady().GetValue()).To(BeTrue())
	e.drv.SetReady(false)
	probe, err = e.ident.Probe(ctx(t), &csipb.ProbeRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(probe.GetReady().GetValue()).To(BeFalse())
}

func TestNoPublishCapability(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.Config{ControllerService: true})
	ccaps, err := e.ctrl.ControllerGetCapabilities(ctx(t), &csipb.ControllerGetCapabilitiesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ccaps.GetCapabilities()).To(BeEmpty())
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.Unimplemented))
	_, err = e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{})
	g.Expect(status.Code(err)).To(Equal(codes.Unimplemented))
	info, err := e.ident.GetPluginInfo(ctx(t), &csipb.GetPluginInfoRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.GetName()).To(Equal(fake.DefaultName))
}

func TestPublishValidation(t *testing.T) {
	e := start(t, fake.DefaultConfig(""))
	for _, tc := range []struct {
		name string
		req  *csipb.ControllerPublishVolumeRequest
	}{
		{"no volume", publishReq("", "n")},
		{"no node", publishReq("v", "")},
		{"no capability", &csipb.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := e.ctrl.ControllerPublishVolume(ctx(t), tc.req)
			g.Expect(status.Code(err)).To(Equal(codes.InvalidArgument))
		})
	}
	g := NewWithT(t)
	_, err := e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{NodeId: "n"})
	g.Expect(status.Code(err)).To(Equal(codes.InvalidArgument))
	g.Expect(e.drv.Publications()).To(BeEmpty())
}

func TestPublishUnpublish(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	req := publishReq("vol-1", "node-a")
	req.Readonly = true
	req.Secrets = map[string]string{"password": "hunter2"}
	req.VolumeContext = map[string]string{"k": "v"}
	for range 2 { // idempotent
		resp, err := e.ctrl.ControllerPublishVolume(ctx(t), req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetPublishContext()).To(Equal(map[string]string{"devicePath": "/dev/fake/vol-1"}))
	}
	e.drv.SetPublishContext("vol-1", map[string]string{"lun": "3"})
	resp, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "node-b"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetPublishContext()).To(Equal(map[string]string{"lun": "3"}))
	g.Expect(e.drv.Published("vol-1")).To(Equal([]string{"node-a", "node-b"}))

	calls := e.drv.Calls()
	g.Expect(calls).To(HaveLen(3))
	g.Expect(calls[0].Method).To(Equal(fake.MethodPublish))
	g.Expect(calls[0].VolumeID).To(Equal("vol-1"))
	g.Expect(calls[0].NodeID).To(Equal("node-a"))
	g.Expect(calls[0].ReadOnly).To(BeTrue())
	g.Expect(calls[0].Secrets).To(Equal(map[string]string{"password": "hunter2"}))
	g.Expect(calls[0].VolumeContext).To(Equal(map[string]string{"k": "v"}))
	g.Expect(calls[0].Capability.GetMount().GetFsType()).To(Equal("ext4"))
	g.Expect(calls[0].Code).To(Equal(codes.OK))
	g.Expect(calls[0].End).NotTo(BeTemporally("<", calls[0].Start))
	g.Expect(calls[2].Secrets).To(BeNil())
	g.Expect(e.drv.CallCount(fake.MethodPublish, "vol-1")).To(Equal(3))
	g.Expect(e.drv.CallCount(fake.MethodPublish, "other")).To(Equal(0))

	for _, node := range []string{"node-a", "node-a", "unknown"} {
		_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-1", NodeId: node})
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "never-seen", NodeId: "n"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Publications()).To(Equal(map[string][]string{"vol-1": {"node-b"}}))

	// An empty node ID unpublishes from every node (CSI spec).
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-1"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Publications()).To(BeEmpty())

	e.drv.ResetCalls()
	g.Expect(e.drv.Calls()).To(BeEmpty())
}

func TestInjectError(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))

	// Before: nothing happens, and the fault wears off after `times`.
	e.drv.InjectError(fake.MethodPublish, "vol-1", codes.ResourceExhausted, 2)
	for range 2 {
		_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "n"))
		g.Expect(status.Code(err)).To(Equal(codes.ResourceExhausted))
		g.Expect(e.drv.Published("vol-1")).To(BeEmpty())
	}
	// Only vol-1 was targeted.
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-2", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Calls()[0].Code).To(Equal(codes.ResourceExhausted))

	// After: the state changes, the caller still gets the error.
	e.drv.InjectErrorAfter(fake.MethodPublish, "", codes.DeadlineExceeded, 1)
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-3", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.DeadlineExceeded))
	g.Expect(e.drv.Published("vol-3")).To(Equal([]string{"n"}))
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-3", "n"))
	g.Expect(err).NotTo(HaveOccurred())

	e.drv.InjectErrorAfter(fake.MethodUnpublish, "vol-3", codes.Internal, 1)
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-3", NodeId: "n"})
	g.Expect(status.Code(err)).To(Equal(codes.Internal))
	g.Expect(e.drv.Published("vol-3")).To(BeEmpty())

	// Until cleared; a specific fault wins over an any-volume fault.
	e.drv.InjectError(fake.MethodProbe, "", codes.Unavailable, 0)
	e.drv.InjectError(fake.MethodUnpublish, "", codes.Internal, 0)
	e.drv.InjectError(fake.MethodUnpublish, "vol-2", codes.NotFound, 0)
	for range 3 {
		_, err = e.ident.Probe(ctx(t), &csipb.ProbeRequest{})
		g.Expect(status.Code(err)).To(Equal(codes.Unavailable))
		_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-2", NodeId: "n"})
		g.Expect(status.Code(err)).To(Equal(codes.NotFound))
		_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-1", NodeId: "n"})
		g.Expect(status.Code(err)).To(Equal(codes.Internal))
	}
	e.drv.SetReady(false)
	e.drv.ClearFaults()
	probe, err := e.ident.Probe(ctx(t), &csipb.ProbeRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(probe.GetReady().GetValue()).To(BeTrue())
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-2", NodeId: "n"})
	g.Expect(err).NotTo(HaveOccurred())
}

func TestInjectNodeError(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))

	// A full node refuses every publish, whatever the volume; other nodes
	// and unpublish are untouched.
	e.drv.InjectNodeError(fake.MethodPublish, "full", codes.ResourceExhausted, "no room on the node", 0)
	for _, vol := range []string{"vol-1", "vol-2"} {
		_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq(vol, "full"))
		g.Expect(status.Code(err)).To(Equal(codes.ResourceExhausted))
		g.Expect(status.Convert(err).Message()).To(Equal("no room on the node"))
		g.Expect(e.drv.Published(vol)).To(BeEmpty())
	}
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "other"))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol-1", NodeId: "full"})
	g.Expect(err).NotTo(HaveOccurred())

	// The node has room again.
	e.drv.ClearNodeError(fake.MethodPublish, "full")
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-2", "full"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Published("vol-2")).To(Equal([]string{"full"}))

	// A counted injection wears off.
	e.drv.InjectNodeError(fake.MethodPublish, "n", codes.ResourceExhausted, "", 1)
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-3", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.ResourceExhausted))
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-3", "n"))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestInjectErrorMessage(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	long := strings.Repeat("m", 1100)
	e.drv.InjectErrorMessage(fake.MethodPublish, "vol-1", codes.Internal, long, 1)
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.Internal))
	g.Expect(status.Convert(err).Message()).To(Equal(long))
	g.Expect(e.drv.Published("vol-1")).To(BeEmpty())
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("vol-1", "n"))
	g.Expect(err).NotTo(HaveOccurred(), "the fault wears off after `times`")
}

func TestLatencyHonoursDeadline(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	e.drv.SetLatency(fake.MethodPublish, "", 5*time.Second)
	e.drv.SetLatency(fake.MethodPublish, "fast", 50*time.Millisecond)

	short, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := e.ctrl.ControllerPublishVolume(short, publishReq("slow", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.DeadlineExceeded))
	g.Expect(time.Since(began)).To(BeNumerically("<", 2*time.Second))
	// The driver noticed and did nothing. Which it sees first, its own
	// deadline or the client's cancellation, is a race.
	g.Eventually(func() codes.Code { return e.drv.Calls()[0].Code }).Should(BeElementOf(codes.DeadlineExceeded, codes.Canceled))
	g.Expect(e.drv.Published("slow")).To(BeEmpty())

	began = time.Now()
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("fast", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(time.Since(began)).To(BeNumerically(">=", 50*time.Millisecond))

	e.drv.SetLatency(fake.MethodPublish, "", 0)
	_, err = e.ctrl.ControllerPublishVolume(short, publishReq("other", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.DeadlineExceeded)) // short already expired
	_, err = e.ctrl.ControllerPublishVolume(ctx(t), publishReq("other", "n"))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestMaxConcurrent(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	e.drv.SetLatency(fake.MethodPublish, "", 200*time.Millisecond)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", string(rune('a'+i))))
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
	wg.Wait()
	g.Expect(e.drv.MaxConcurrent(fake.MethodPublish)).To(Equal(5))
	g.Expect(e.drv.MaxConcurrent(fake.MethodUnpublish)).To(Equal(0))
	g.Expect(e.drv.Published("v")).To(Equal([]string{"a", "b", "c", "d", "e"}))
	e.drv.ResetCalls()
	g.Expect(e.drv.MaxConcurrent(fake.MethodPublish)).To(Equal(0))
}

func TestListVolumesPaging(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	for _, p := range [][2]string{{"v3", "n1"}, {"v1", "n2"}, {"v1", "n1"}, {"v2", "n1"}, {"v4", "n1"}} {
		_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq(p[0], p[1]))
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err := e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "v4", NodeId: "n1"})
	g.Expect(err).NotTo(HaveOccurred())
	e.drv.DetachBehindBack("v2", "n1")

	got := map[string][]string{}
	var order []string
	token, pages := "", 0
	for {
		resp, err := e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{MaxEntries: 3, StartingToken: token})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(resp.GetEntries())).To(BeNumerically("<=", 3))
		pages++
		for _, en := range resp.GetEntries() {
			order = append(order, en.GetVolume().GetVolumeId())
			got[en.GetVolume().GetVolumeId()] = en.GetStatus().GetPublishedNodeIds()
		}
		if token = resp.GetNextToken(); token == "" {
			break
		}
	}
	g.Expect(pages).To(Equal(2))
	g.Expect(order).To(Equal([]string{"v1", "v2", "v3", "v4"}))
	g.Expect(got).To(Equal(map[string][]string{"v1": {"n1", "n2"}, "v2": nil, "v3": {"n1"}, "v4": nil}))

	all, err := e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(all.GetEntries()).To(HaveLen(4))
	g.Expect(all.GetNextToken()).To(BeEmpty())

	for _, bad := range []string{"x", "-1", "5"} {
		_, err = e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{StartingToken: bad})
		g.Expect(status.Code(err)).To(Equal(codes.Aborted), bad)
	}
	_, err = e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{MaxEntries: -1})
	g.Expect(status.Code(err)).To(Equal(codes.InvalidArgument))
}

func TestListVolumesWithoutPublishedNodes(t *testing.T) {
	g := NewWithT(t)
	cfg := fake.DefaultConfig("")
	cfg.ListVolumesPublishedNodes = false
	e := start(t, cfg)
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetEntries()).To(HaveLen(1))
	g.Expect(resp.GetEntries()[0].GetStatus()).To(BeNil())
}

// A driver that completes the IDs it is given keeps and lists the complete
// one; requests with the short ID still reach the same volume.
func TestCanonicalVolumeID(t *testing.T) {
	g := NewWithT(t)
	cfg := fake.DefaultConfig("")
	cfg.CanonicalVolumeID = func(volumeID, nodeID string) string { return nodeID + "/" + volumeID }
	e := start(t, cfg)
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Published("n/v")).To(Equal([]string{"n"}))
	g.Expect(e.drv.Published("v")).To(BeEmpty())
	resp, err := e.ctrl.ListVolumes(ctx(t), &csipb.ListVolumesRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetEntries()).To(HaveLen(1))
	g.Expect(resp.GetEntries()[0].GetVolume().GetVolumeId()).To(Equal("n/v"))
	g.Expect(e.drv.CallCount(fake.MethodPublish, "v")).To(Equal(1), "call records keep the request's ID")

	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "v", NodeId: "n"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.drv.Publications()).To(BeEmpty())
}

func TestStopStartKeepsState(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", "n"))
	g.Expect(err).NotTo(HaveOccurred())
	e.drv.InjectError(fake.MethodUnpublish, "", codes.Internal, 1)
	g.Expect(e.drv.Start(e.socket)).To(MatchError(ContainSubstring("already serving")))

	e.drv.Stop()
	e.drv.Stop() // no-op
	_, statErr := os.Stat(e.socket)
	g.Expect(os.IsNotExist(statErr)).To(BeTrue(), "socket file removed")
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	_, err = e.ident.Probe(short, &csipb.ProbeRequest{})
	g.Expect(status.Code(err)).To(BeElementOf(codes.Unavailable, codes.DeadlineExceeded))

	// A stale file where the socket goes must not stop a restart.
	g.Expect(os.WriteFile(e.socket, nil, 0o600)).To(Succeed())
	g.Expect(e.drv.Start(e.socket)).To(Succeed())
	// The same client reconnects by itself.
	g.Eventually(func() error {
		_, err := e.ident.Probe(ctx(t), &csipb.ProbeRequest{})
		return err
	}).WithTimeout(5 * time.Second).Should(Succeed())
	g.Expect(e.drv.Published("v")).To(Equal([]string{"n"}))
	_, err = e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: "v", NodeId: "n"})
	g.Expect(status.Code(err)).To(Equal(codes.Internal))
	g.Expect(e.drv.CallCount(fake.MethodPublish, "")).To(Equal(1))
}

func TestStopBoundsSlowCalls(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig(""))
	e.drv.SetLatency(fake.MethodPublish, "", time.Minute)
	errc := make(chan error, 1)
	go func() {
		_, err := e.ctrl.ControllerPublishVolume(context.Background(), publishReq("v", "n"))
		errc <- err
	}()
	g.Eventually(func() int { return e.drv.CallCount(fake.MethodPublish, "") }).Should(Equal(1))
	began := time.Now()
	e.drv.Stop()
	g.Expect(time.Since(began)).To(BeNumerically("<", 10*time.Second))
	g.Eventually(errc).WithTimeout(5 * time.Second).Should(Receive(HaveOccurred()))
	g.Expect(e.drv.Published("v")).To(BeEmpty())
}

func TestOnCall(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var seen []fake.Call
	cfg := fake.DefaultConfig("")
	cfg.OnCall = func(c fake.Call) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
	}
	e := start(t, cfg)
	e.drv.InjectError(fake.MethodPublish, "", codes.Aborted, 1)
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v", "n"))
	g.Expect(status.Code(err)).To(Equal(codes.Aborted))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(seen).To(HaveLen(1))
	g.Expect(seen[0].Method).To(Equal(fake.MethodPublish))
	g.Expect(seen[0].Code).To(Equal(codes.Aborted))
	g.Expect(seen[0].End.IsZero()).To(BeFalse())
}

func capWith(mode csipb.VolumeCapability_AccessMode_Mode) *csipb.VolumeCapability {
	c := mountCap()
	c.AccessMode.Mode = mode
	return c
}

func TestOverlapsAndRepeatedPublishes(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig("drv.example.com"))
	publish := func(vol, node string, mode csipb.VolumeCapability_AccessMode_Mode) {
		t.Helper()
		_, err := e.ctrl.ControllerPublishVolume(ctx(t), &csipb.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: capWith(mode)})
		g.Expect(err).NotTo(HaveOccurred())
	}
	unpublish := func(vol, node string) {
		t.Helper()
		_, err := e.ctrl.ControllerUnpublishVolume(ctx(t), &csipb.ControllerUnpublishVolumeRequest{VolumeId: vol, NodeId: node})
		g.Expect(err).NotTo(HaveOccurred())
	}

	// A single-node volume moved the right way: unpublished, then published.
	publish("rwo", "n1", csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	unpublish("rwo", "n1")
	publish("rwo", "n2", csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	// A multi-node volume on two nodes is no overlap.
	publish("rwx", "n1", csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	publish("rwx", "n2", csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	publish("rox", "n1", csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
	publish("rox", "n2", csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
	g.Expect(e.drv.Overlaps()).To(BeEmpty())
	g.Expect(e.drv.RepeatedPublishes()).To(BeEmpty())

	// Every single-node mode flags a second node.
	for _, mode := range []csipb.VolumeCapability_AccessMode_Mode{
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
	} {
		vol := "vol-" + mode.String()
		publish(vol, "n1", mode)
		publish(vol, "n2", mode)
	}
	overlaps := e.drv.Overlaps()
	g.Expect(overlaps).To(HaveLen(4))
	g.Expect(overlaps[0].VolumeID).To(Equal("vol-SINGLE_NODE_WRITER"))
	g.Expect(overlaps[0].Nodes).To(Equal([]string{"n1", "n2"}))
	g.Expect(overlaps[0].Mode).To(Equal("SINGLE_NODE_WRITER"))

	// The same pair published again is repeated, not an overlap.
	publish("rwo", "n2", csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	publish("rwo", "n2", csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	g.Expect(e.drv.RepeatedPublishes()).To(Equal(map[string]int{"rwo": 2}))
	g.Expect(e.drv.Overlaps()).To(HaveLen(4))
}

func TestStateSurvivesRestore(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig("drv.example.com"))
	for _, node := range []string{"n1", "n2", "n2"} {
		_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v1", node))
		g.Expect(err).NotTo(HaveOccurred())
	}
	saved := e.drv.State()
	g.Expect(saved.Published).To(Equal(map[string][]string{"v1": {"n1", "n2"}}))
	g.Expect(saved.Overlaps).To(HaveLen(1))
	g.Expect(saved.RepeatedPublishes).To(Equal(map[string]int{"v1": 1}))

	// A new process's driver, given the saved state, carries on from it.
	other := fake.New(fake.DefaultConfig("drv.example.com"))
	other.Restore(saved)
	g.Expect(other.Published("v1")).To(Equal([]string{"n1", "n2"}))
	g.Expect(other.Overlaps()).To(Equal(saved.Overlaps))
	g.Expect(other.RepeatedPublishes()).To(Equal(saved.RepeatedPublishes))
	g.Expect(other.State()).To(Equal(saved))
}

func TestGCEPDVolumeID(t *testing.T) {
	node := "projects/proj1/zones/z1/instances/node1"
	for _, tc := range []struct{ volume, node, want string }{
		{"projects/UNSPECIFIED/zones/z1/disks/d1", node, "projects/proj1/zones/z1/disks/d1"},
		// Already complete, or not a GCE PD ID at all: kept.
		{"projects/p2/zones/z1/disks/d1", node, "projects/p2/zones/z1/disks/d1"},
		{"handle-1", node, "handle-1"},
		{"projects/UNSPECIFIED/zones/z1/disks/d1", "node1", "projects/UNSPECIFIED/zones/z1/disks/d1"},
	} {
		if got := fake.GCEPDVolumeID(tc.volume, tc.node); got != tc.want {
			t.Errorf("GCEPDVolumeID(%q, %q) = %q, want %q", tc.volume, tc.node, got, tc.want)
		}
	}
}

func TestCallRecord(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig("drv.example.com"))
	req := publishReq("v1", "n1")
	req.Secrets = map[string]string{"password": "s3cret"}
	req.Readonly = true
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), req)
	g.Expect(err).NotTo(HaveOccurred())
	calls := e.drv.Calls()
	rec := calls[len(calls)-1].Record()
	g.Expect(rec.Method).To(Equal(fake.MethodPublish))
	g.Expect(rec.VolumeID).To(Equal("v1"))
	g.Expect(rec.NodeID).To(Equal("n1"))
	g.Expect(rec.Readonly).To(BeTrue())
	g.Expect(rec.AccessMode).To(Equal("SINGLE_NODE_WRITER"))
	g.Expect(rec.FSType).To(Equal("ext4"))
	g.Expect(rec.Block).To(BeFalse())
	g.Expect(rec.Code).To(Equal("OK"))
	g.Expect(rec.Secrets).To(Equal(1), "secrets are counted")
	g.Expect(fmt.Sprint(rec)).NotTo(ContainSubstring("s3cret"), "never copied")
	g.Expect(rec.End).NotTo(BeTemporally("<", rec.Start))
}

func TestCallRecordsTheCaller(t *testing.T) {
	g := NewWithT(t)
	e := start(t, fake.DefaultConfig("drv.example.com"))
	_, err := e.ctrl.ControllerPublishVolume(ctx(t), publishReq("v1", "n1"))
	g.Expect(err).NotTo(HaveOccurred())
	calls := e.drv.Calls()
	g.Expect(calls[len(calls)-1].Record().Caller).To(Equal(os.Getpid()), "the process at the other end of the socket")
}

// TestFinishAbandoned: a backend that finishes what it started when its
// caller gives up, and records when it was really done.
func TestFinishAbandoned(t *testing.T) {
	cfg := fake.DefaultConfig("drv.example.com")
	for _, finish := range []bool{false, true} {
		t.Run(fmt.Sprintf("FinishAbandoned=%t", finish), func(t *testing.T) {
			g := NewWithT(t)
			cfg.FinishAbandoned = finish
			e := start(t, cfg)
			e.drv.SetLatency(fake.MethodPublish, "", 400*time.Millisecond)
			callCtx, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
			defer cancel()
			_, err := e.ctrl.ControllerPublishVolume(callCtx, publishReq("v1", "n1"))
			g.Expect(status.Code(err)).To(Equal(codes.DeadlineExceeded), "the caller gave up")
			var rec fake.CallRecord
			g.Eventually(func(g Gomega) {
				calls := e.drv.Calls()
				rec = calls[len(calls)-1].Record()
				g.Expect(rec.End).NotTo(BeZero())
			}).Should(Succeed())
			if !finish {
				g.Expect(rec.Code).NotTo(Equal("OK"))
				g.Expect(e.drv.Published("v1")).To(BeEmpty())
				return
			}
			g.Expect(rec.Code).To(Equal("OK"))
			g.Expect(rec.End.Sub(rec.Start)).To(BeNumerically(">=", 400*time.Millisecond))
			g.Expect(e.drv.Published("v1")).To(Equal([]string{"n1"}), "published although nobody waited")
		})
	}
}
