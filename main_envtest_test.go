package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// The tests in this file run the attacher command (this test binary, see
// TestMain) against a real API server, as a user holding the RBAC of
// config/rbac, minus what each test takes away.

const binaryTestDriver = "binary.csi.test"

// apiServer is the control plane shared by the tests of this file,
// started by the first one and stopped by TestMain.
var apiServer struct {
	once    sync.Once
	env     *envtest.Environment
	k8s     client.Client
	address string // the fake driver's
	err     error
}

func stopAPIServer() {
	if apiServer.env != nil {
		_ = apiServer.env.Stop()
	}
}

// envtestAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS (set by
// `make test`), else the folder hack/install-envtest.sh fills.
func envtestAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command("hack/install-envtest.sh").Output()
	if err != nil {
		return "", fmt.Errorf("envtest needs kube-apiserver and etcd: hack/install-envtest.sh failed: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func startAPIServer(t *testing.T) {
	t.Helper()
	apiServer.once.Do(func() {
		assets, err := envtestAssets()
		if err != nil {
			apiServer.err = err
			return
		}
		env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
		cfg, err := env.Start()
		if err != nil {
			apiServer.err = err
			return
		}
		apiServer.env = env
		scheme := runtime.NewScheme()
		_ = clientgoscheme.AddToScheme(scheme)
		if apiServer.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			apiServer.err = err
			return
		}
		// A short directory: unix socket paths are limited to 108 bytes.
		dir, err := os.MkdirTemp("", "att")
		if err != nil {
			apiServer.err = err
			return
		}
		driver := fake.New(fake.DefaultConfig(binaryTestDriver))
		socket := filepath.Join(dir, "csi.sock")
		if apiServer.err = driver.Start(socket); apiServer.err == nil {
			apiServer.address = "unix://" + socket
		}
	})
	if apiServer.err != nil {
		t.Fatalf("starting the API server: %v", apiServer.err)
	}
}

// loadRBAC reads one object of config/rbac.
func loadRBAC[T any](t *testing.T, file string) *T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := yaml.Unmarshal(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj
}

// attacherUser creates a user holding config/rbac's ClusterRole, edited by
// editRole, and, when withLease, its Lease Role in namespace default,
// edited by editLease. It returns the path of the user's kubeconfig.
func attacherUser(t *testing.T, name string, editRole func(*rbacv1.ClusterRole), withLease bool, editLease func(*rbacv1.Role)) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	cr := loadRBAC[rbacv1.ClusterRole](t, "role.yaml")
	cr.ObjectMeta = metav1.ObjectMeta{Name: name}
	if editRole != nil {
		editRole(cr)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}
	objs := []client.Object{cr, crb}
	if withLease {
		role := loadRBAC[rbacv1.Role](t, "leader_election_role.yaml")
		role.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: "default"}
		if editLease != nil {
			editLease(role)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}
		objs = append(objs, role, rb)
	}
	for _, o := range objs {
		g.Expect(apiServer.k8s.Create(ctx, o)).To(Succeed())
		t.Cleanup(func() { _ = apiServer.k8s.Delete(ctx, o) })
	}
	u, err := apiServer.env.AddUser(envtest.User{Name: name}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kc, err := u.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(path, kc, 0o600)).To(Succeed())
	return path
}

// freeAddr returns a free 127.0.0.1:port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// lockedBuffer collects the command's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// attacherProcess is the attacher command running in the background.
type attacherProcess struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	health  string // --health-probe-bind-address
	metrics string // --metrics-addr
	done    chan struct{}
}

// startAttacherCommand runs the attacher with the driver, kubeconfig and
// args, and stops it (SIGTERM) when the test ends.
func startAttacherCommand(t *testing.T, kubeconfig string, args ...string) *attacherProcess {
	t.Helper()
	p := &attacherProcess{out: &lockedBuffer{}, health: freeAddr(t), metrics: freeAddr(t), done: make(chan struct{})}
	all := append([]string{
		"--csi-address=" + apiServer.address,
		"--kubeconfig=" + kubeconfig,
		"--leader-election-namespace=default",
		"--metrics-addr=" + p.metrics,
		"--health-probe-bind-address=" + p.health,
	}, args...)
	p.cmd = exec.Command(os.Args[0], all...)
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("csi-attacher output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *attacherProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// get returns the status code and body of a GET on the health server.
func (p *attacherProcess) get(path string) (int, string, error) {
	return getURL("http://" + p.health + path)
}

func getURL(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

func grantsEvents(rule rbacv1.PolicyRule) bool { return slices.Contains(rule.Resources, "events") }

// textLine is the start of a line of the text format: zap's console
// encoder, an ISO 8601 timestamp and the level, tab separated.
var textLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})\t(info|error|warn)\t`)

// TestLogFormatsWithClientGoFailures runs the attacher with each log
// format as a user that may not create Events, so that client-go's event
// broadcaster reports the rejected LeaderElection Event through klog's
// global logger, and checks that every line of the output is in the chosen
// format. (A forbidden list is no test of this: controller-runtime hands
// the reflector its own logger, and the cache never syncs, so leader
// election never starts.)
func TestLogFormatsWithClientGoFailures(t *testing.T) {
	startAPIServer(t)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			g := NewWithT(t)
			kubeconfig := attacherUser(t, "attacher-noevents-"+format, func(cr *rbacv1.ClusterRole) {
				cr.Rules = slices.DeleteFunc(cr.Rules, grantsEvents)
			}, true, func(r *rbacv1.Role) {
				r.Rules = slices.DeleteFunc(r.Rules, grantsEvents)
			})
			p := startAttacherCommand(t, kubeconfig, "--logging-format="+format, "--v=5", "--leader-election")
			// The rejected Event, as client-go words it.
			g.Eventually(p.out.String).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).
				Should(ContainSubstring("Server rejected event"))
			// The leader's queues carry the reference's names.
			g.Eventually(func(g Gomega) {
				code, body, err := getURL("http://" + p.metrics + "/metrics")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(code).To(Equal(http.StatusOK))
				g.Expect(body).To(ContainSubstring(`workqueue_adds_total{controller="volumeattachment",name="csi-attacher-va"}`))
				g.Expect(body).To(ContainSubstring(`workqueue_adds_total{controller="volumeattachment-detach",name="csi-attacher-va"}`))
				g.Expect(body).To(ContainSubstring(`workqueue_adds_total{controller="persistentvolume",name="csi-attacher-pv"}`))
			}).WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
			p.stop()

			out := p.out.String()
			all := lines(out)
			g.Expect(len(all)).To(BeNumerically(">", 5))
			eventLines := 0
			for _, l := range all {
				switch format {
				case "json":
					var entry map[string]any
					g.Expect(json.Unmarshal([]byte(l), &entry)).To(Succeed(), "not JSON: %s", l)
					g.Expect(entry).To(HaveKey("ts"), l)
					g.Expect(entry).To(HaveKey("level"), l)
					g.Expect(entry).To(HaveKey("msg"), l)
				case "text":
					g.Expect(l).To(MatchRegexp(textLine.String()), "not the text format: %s", l)
				}
				if strings.Contains(l, "Server rejected event") && strings.Contains(l, "events is forbidden") {
					eventLines++
				}
			}
			g.Expect(eventLines).To(BeNumerically(">=", 1), "client-go's rejected Event is logged in the format:\n%s", out)
		})
	}
}

// TestMissingLeaseRight runs the attacher as a user that holds the
// ClusterRole but not the Lease Role: it never leads, and it says why, in
// an error line naming the Role, in /readyz, and in the words doctor uses.
func TestMissingLeaseRight(t *testing.T) {
	startAPIServer(t)
	g := NewWithT(t)
	const user = "attacher-nolease"
	kubeconfig := attacherUser(t, user, nil, false, nil)
	p := startAttacherCommand(t, kubeconfig, "--logging-format=json", "--leader-election")

	lease := leader.LeaseName(binaryTestDriver)
	want := "the attacher may not get leases.coordination.k8s.io/" + lease + " in namespace default: grant it in the " +
		"Role external-attacher-cfg (config/rbac/leader_election_role.yaml) bound in namespace default"
	var errorLine map[string]any
	g.Eventually(func(g Gomega) {
		for _, l := range lines(p.out.String()) {
			var entry map[string]any
			if json.Unmarshal([]byte(l), &entry) == nil && entry["level"] == "error" && strings.Contains(fmt.Sprint(entry["error"]), want) {
				errorLine = entry
			}
		}
		g.Expect(errorLine).NotTo(BeNil())
	}).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	g.Expect(errorLine["msg"]).To(Equal("Missing API right: the attacher stays unready until it is granted"))

	// Not ready, and the probe server says why on /readyz/rbac.
	g.Eventually(func(g Gomega) {
		code, _, err := p.get("/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusInternalServerError))
		code, body, err := p.get("/readyz/rbac")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusInternalServerError))
		g.Expect(body).To(ContainSubstring("missing API rights: " + want))
		g.Expect(body).To(ContainSubstring("may not update leases.coordination.k8s.io/" + lease))
		g.Expect(body).To(ContainSubstring("may not create leases.coordination.k8s.io in namespace default"))
	}).WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	// The rest of the readiness is fine: only the rights hold it back.
	for _, check := range []string{"/readyz/informers", "/readyz/csi-driver"} {
		g.Eventually(func() (int, error) {
			code, _, err := p.get(check)
			return code, err
		}).WithTimeout(30*time.Second).Should(Equal(http.StatusOK), check)
	}

	// A replica that does not lead is alive: /healthz/leader-election is
	// about a leader that stopped renewing.
	code, body, err := p.get("/healthz/leader-election")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK), body)

	// doctor, run with the same flags and user, gives the same verdict.
	out, code := runCommand(t, nil, "doctor", "--csi-address="+apiServer.address, "--kubeconfig="+kubeconfig,
		"--leader-election", "--leader-election-namespace=default")
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(ContainSubstring("FAIL rights: " + strings.Replace(want, "the attacher", user, 1)))
}
