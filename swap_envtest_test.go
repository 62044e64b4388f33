package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// The driver of csi-driver-host-path, whose controller Pod the tests of
// this file swap the image of.
const hostpathDriver = "hostpath.csi.k8s.io"

// hostpathServiceAccount is that Pod's ServiceAccount, bound to the
// reference's roles by testdata/hostpath/rbac.yaml.
const hostpathServiceAccount = "system:serviceaccount:default:csi-hostpathplugin-sa"

// TestSwappedReferenceContainer runs the attacher as the reference's
// container runs in csi-driver-host-path's controller Pod, with only the
// image changed: exactly its args (--v=5 --csi-address=<socket>), no
// kubeconfig flag (the client configuration comes from the environment,
// as in-cluster configuration does), only the reference's RBAC, and
// another container of the Pod already listening on 8080 and 8081. It
// must attach and detach a volume, open no port, take no Lease, and exit
// on SIGTERM within the Pod's default 30 s grace period.
func TestSwappedReferenceContainer(t *testing.T) {
	startAPIServer(t)
	swapScenario(t, apiServer.env, apiServer.k8s)
}

// oldestKubernetes is the oldest Kubernetes release the README claims
// support for.
const oldestKubernetes = "1.34"

// TestSwappedReferenceContainerOnOldestKubernetes runs the same swap
// against a control plane that emulates the oldest Kubernetes release the
// README claims: envtest's kube-apiserver with --emulated-version, which
// serves that release's APIs and feature defaults (1.37 emulates down to
// 1.34).
func TestSwappedReferenceContainerOnOldestKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane of its own")
	}
	assets, err := envtestAssets()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	env.ControlPlane.GetAPIServer().Configure().Append("emulated-version", "kube="+oldestKubernetes)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver emulating %s: %v", oldestKubernetes, err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	k8s, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	info, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if got := info.EmulationMajor + "." + info.EmulationMinor; got != oldestKubernetes {
		t.Fatalf("kube-apiserver %s emulates %q, want %s", info.GitVersion, got, oldestKubernetes)
	}
	t.Logf("kube-apiserver %s emulating %s.%s", info.GitVersion, info.EmulationMajor, info.EmulationMinor)
	swapScenario(t, env, k8s)
}

// swapScenario is the swap of TestSwappedReferenceContainer against the
// control plane env, k8s being an administrator's client of it.
func swapScenario(t *testing.T, env *envtest.Environment, k8s client.Client) {
	g := NewWithT(t)
	ctx := context.Background()

	// Another container of the Pod holds the ports the attacher used to
	// open unasked (or another process of this machine already does).
	for _, port := range []string{"8080", "8081"} {
		occupyPort(t, port)
	}

	applyManifests(t, k8s, filepath.Join("testdata", "hostpath", "rbac.yaml"))
	kubeconfig := impersonatingKubeconfig(t, env, hostpathServiceAccount)

	dir, err := os.MkdirTemp("", "swap")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "csi.sock")
	driver := fake.New(fake.DefaultConfig(hostpathDriver))
	g.Expect(driver.Start(socket)).To(Succeed())
	t.Cleanup(driver.Stop)

	// The reference container's args, verbatim.
	cmd := exec.Command(os.Args[0], "--v=5", "--csi-address="+socket)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	g.Expect(cmd.Start()).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("csi-attacher output:\n%s", out.String())
		}
	})

	// A volume attached and detached, as kube-controller-manager asks.
	node := "swap-node"
	csiNode := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: hostpathDriver, NodeID: "node-id-" + node}}}}
	g.Expect(k8s.Create(ctx, csiNode)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, csiNode) })
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "swap-pv"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: hostpathDriver, VolumeHandle: "swap-volume"}},
		},
	}
	g.Expect(k8s.Create(ctx, pv)).To(Succeed())
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "swap-va"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: hostpathDriver, NodeName: node,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pv.Name)}},
	}
	g.Expect(k8s.Create(ctx, va)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(va), va)).To(Succeed())
		g.Expect(va.Status.Attached).To(BeTrue(), "attachError: %v", va.Status.AttachError)
	}).WithTimeout(90 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Expect(va.Finalizers).To(ContainElement(volume.FinalizerName(hostpathDriver)))
	g.Expect(driver.Published("swap-volume")).To(Equal([]string{"node-id-" + node}))

	g.Expect(k8s.Delete(ctx, va)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(va), va))
	}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(BeTrue())
	g.Expect(driver.Published("swap-volume")).To(BeEmpty())
	g.Expect(k8s.Delete(ctx, pv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pv), pv)).To(Succeed())
		g.Expect(pv.Finalizers).NotTo(ContainElement(volume.FinalizerName(hostpathDriver)))
	}).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), "our PV finalizer is released")
	// envtest runs no kube-controller-manager to drop kubernetes.io/pv-protection.
	pv.Finalizers = nil
	g.Expect(k8s.Update(ctx, pv)).To(Succeed())

	// It opened no port and took no Lease; it ran throughout.
	select {
	case err := <-done:
		exited = true
		t.Fatalf("the attacher exited: %v", err)
	default:
	}
	g.Expect(listeningPorts(t, cmd.Process.Pid)).To(BeEmpty(), "the attacher listens on TCP ports nobody asked for")
	g.Expect(out.String()).NotTo(ContainSubstring("address already in use"))
	err = k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: leader.LeaseName(hostpathDriver)}, &coordinationv1.Lease{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no leader election unless asked: %v", err)

	// SIGTERM while a ControllerPublish hangs on the backend: the call is
	// cut at --timeout (15 s by default), its failure is written, and the
	// process is out within the default grace period, its finalizer left
	// on the VolumeAttachment for whoever attaches next.
	const hangingCall = 45 * time.Second
	driver.SetLatency(fake.MethodPublish, "swap-volume-2", hangingCall)
	pv2 := pv.DeepCopy()
	pv2.ObjectMeta = metav1.ObjectMeta{Name: "swap-pv-2"}
	pv2.Spec.CSI.VolumeHandle = "swap-volume-2"
	g.Expect(k8s.Create(ctx, pv2)).To(Succeed())
	va2 := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "swap-va-2"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: hostpathDriver, NodeName: node,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pv2.Name)}},
	}
	g.Expect(k8s.Create(ctx, va2)).To(Succeed())
	t.Cleanup(func() { stripAndDelete(ctx, k8s, va2, pv2) })
	g.Eventually(func() int { return driver.CallCount(fake.MethodPublish, "swap-volume-2") }).
		WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(1))
	start := time.Now()
	g.Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	select {
	case err := <-done:
		exited = true
		g.Expect(err).NotTo(HaveOccurred())
	case <-time.After(defaultPodGracePeriod):
		t.Fatalf("the attacher did not exit within %s of SIGTERM", defaultPodGracePeriod)
	}
	took := time.Since(start)
	t.Logf("exited %.1f s after SIGTERM, with a ControllerPublish hanging for %s in flight", took.Seconds(), hangingCall)
	g.Expect(took).To(BeNumerically(">", 5*time.Second), "it waited for the call")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(va2), va2)).To(Succeed())
	g.Expect(va2.Status.AttachError).NotTo(BeNil(), "the call's outcome is written before the exit")
	g.Expect(va2.Status.AttachError.Message).To(ContainSubstring("DeadlineExceeded"))
	g.Expect(va2.Finalizers).To(ContainElement(volume.FinalizerName(hostpathDriver)), "a publish that timed out may have attached")
	g.Expect(driver.CallCount(fake.MethodPublish, "swap-volume-2")).To(Equal(1), "no new call after SIGTERM")
}

// stripAndDelete removes every finalizer of objs and deletes them: envtest
// runs no controller that would.
func stripAndDelete(ctx context.Context, k8s client.Client, objs ...client.Object) {
	for _, o := range objs {
		if k8s.Get(ctx, client.ObjectKeyFromObject(o), o) == nil {
			o.SetFinalizers(nil)
			_ = k8s.Update(ctx, o)
		}
		_ = k8s.Delete(ctx, o)
	}
}

// TestLeaderlessReplicaReportsActiveLeader runs the attacher without
// leader election while another attacher of its driver holds and renews
// the driver's Lease: it says so at error level, naming the holder.
func TestLeaderlessReplicaReportsActiveLeader(t *testing.T) {
	startAPIServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leader.LeaseName(binaryTestDriver), Namespace: "default"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other-replica_0"), LeaseDurationSeconds: ptr.To[int32](3600),
			RenewTime: ptr.To(metav1.NewMicroTime(time.Now()))},
	}
	// A Lease left by an earlier test's leader (released, not deleted).
	g.Expect(client.IgnoreNotFound(apiServer.k8s.Delete(ctx, lease.DeepCopy()))).To(Succeed())
	g.Expect(apiServer.k8s.Create(ctx, lease)).To(Succeed())
	t.Cleanup(func() { _ = apiServer.k8s.Delete(ctx, lease) })

	kubeconfig := attacherUser(t, "attacher-leaderless", nil, true, nil)
	p := startAttacherCommand(t, kubeconfig, "--logging-format=json")
	g.Eventually(p.out.String).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(And(
		ContainSubstring(`"level":"error"`),
		ContainSubstring(`"msg":"Another attacher of this driver is active while this replica runs without leader election"`),
		ContainSubstring(`"holder":"other-replica_0"`),
	))
}

// occupyPort listens on :port for the test, as another container of the
// Pod would, and answers every connection. If something else already
// listens there the port is just as taken, which is all the test needs.
func occupyPort(t *testing.T, port string) {
	t.Helper()
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("cannot occupy port %s: %v", port, err)
		}
		c, dialErr := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if dialErr != nil {
			t.Fatalf("port %s is in use but nothing answers there: %v", port, dialErr)
		}
		_ = c.Close()
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "another container")
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// applyManifests creates every object of a multi-document YAML file and
// deletes them when the test ends.
func applyManifests(t *testing.T, k8s client.Client, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatalf("%s: %v", file, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Fatalf("%s: creating %s %s: %v", file, obj.GetKind(), obj.GetName(), err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
}

// impersonatingKubeconfig writes a kubeconfig of an administrator of the
// test API server that acts as user, as a ServiceAccount's in-cluster
// token would.
func impersonatingKubeconfig(t *testing.T, env *envtest.Environment, user string) string {
	t.Helper()
	admin, err := env.AddUser(envtest.User{Name: "swap-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// listeningPorts returns the local addresses of the TCP sockets process
// pid listens on, read from /proc.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var listening []string
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) > 9 && fields[3] == listen && inodes[fields[9]] {
				listening = append(listening, table+" "+hexAddress(fields[1]))
			}
		}
		_ = f.Close()
	}
	return listening
}

// hexAddress turns /proc/net/tcp's "0100007F:1F90" into "…:8080".
func hexAddress(s string) string {
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	n, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return s
	}
	return host + ":" + strconv.FormatUint(n, 10)
}
