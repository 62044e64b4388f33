package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// envtestAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS (set by
// `make test`), else the folder hack/install-envtest.sh fills.
func envtestAssets(t *testing.T) string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := exec.Command("../../hack/install-envtest.sh").Output()
	if err != nil {
		t.Fatalf("envtest needs kube-apiserver and etcd: hack/install-envtest.sh failed: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// doctorEnv is an API server, a fake driver and kubeconfigs to run doctor with.
type doctorEnv struct {
	t       *testing.T
	env     *envtest.Environment
	k8s     client.Client
	dir     string
	address string
	admin   string // kubeconfig path
}

func startEnv(t *testing.T) *doctorEnv {
	g := NewWithT(t)
	testEnv := &envtest.Environment{BinaryAssetsDirectory: envtestAssets(t)}
	cfg, err := testEnv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = testEnv.Stop() })

	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "doc")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	driver := fake.New(fake.DefaultConfig(testDriver))
	socket := filepath.Join(dir, "csi.sock")
	g.Expect(driver.Start(socket)).To(Succeed())
	t.Cleanup(driver.Stop)

	e := &doctorEnv{t: t, env: testEnv, k8s: k8s, dir: dir, address: "unix://" + socket}
	e.admin = e.kubeconfig(envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	return e
}

// kubeconfig writes a kubeconfig for user and returns its path.
func (e *doctorEnv) kubeconfig(user envtest.User) string {
	g := NewWithT(e.t)
	u, err := e.env.AddUser(user, nil)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := u.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(e.dir, strings.NewReplacer(":", "_").Replace(user.Name)+".kubeconfig")
	g.Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// run runs doctor with args after the default flags.
func (e *doctorEnv) run(kubeconfig string, args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	all := append([]string{"--csi-address=" + e.address, "--kubeconfig=" + kubeconfig,
		"--leader-election", "--leader-election-namespace=default"}, args...)
	exit := Main(all, &stdout, &stderr)
	e.t.Logf("csi-attacher doctor %s -> exit %d\n%s%s", strings.Join(args, " "), exit, stdout.String(), stderr.String())
	return exit, stdout.String()
}

// create creates obj and deletes it when t ends.
func (e *doctorEnv) create(t *testing.T, obj client.Object) {
	g := NewWithT(t)
	g.Expect(e.k8s.Create(context.Background(), obj)).To(Succeed())
	t.Cleanup(func() {
		g.Expect(client.IgnoreNotFound(e.k8s.Delete(context.Background(), obj))).To(Succeed())
		g.Eventually(func() bool {
			err := e.k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
			return err != nil
		}).Should(BeTrue())
	})
}

func csiDriverObject(attachRequired bool) *storagev1.CSIDriver {
	return &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(attachRequired)}}
}

// lines returns the verdict lines of a text output, without the details.
func lines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "doctor:") {
			ls = append(ls, l)
		}
	}
	return ls
}

func TestDoctorAgainstEnvtest(t *testing.T) {
	if testing.Short() {
		t.Skip("envtest")
	}
	e := startEnv(t)
	ctx := context.Background()

	// The healthy base: attach required, every CSINode has the driver, one
	// attached VolumeAttachment. Subtests break one thing each and undo it.
	e.create(t, csiDriverObject(true))
	for _, n := range []string{"node-a", "node-b"} {
		node := csiNode(n, testDriver)
		e.create(t, &node)
	}
	healthyVA := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va-healthy"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: testDriver, NodeName: "node-a",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-healthy")}},
	}
	e.create(t, healthyVA)
	healthyVA.Status.Attached = true
	NewWithT(t).Expect(e.k8s.Status().Update(ctx, healthyVA)).To(Succeed())

	t.Run("healthy", func(t *testing.T) {
		g := NewWithT(t)
		exit, out := e.run(e.admin)
		g.Expect(exit).To(Equal(0))
		g.Expect(lines(out)).To(HaveExactElements(
			"OK   driver: doctor.csi.test 1.0.0 at "+e.address,
			"OK   mode: full: ControllerPublishVolume on attach, ControllerUnpublishVolume on detach",
			MatchRegexp(`^OK   api: Kubernetes v\S+ at https://127\.0\.0\.1:\d+, as user admin \(groups system:masters`),
			"OK   rights: all 20 API rights the attacher needs are granted to admin",
			"OK   secret-watch: "+secretWatchOn,
			"OK   csidriver: CSIDriver doctor.csi.test has attachRequired=true",
			"OK   csinodes: all 2 CSINodes have driver doctor.csi.test",
			"OK   attachments: 1 VolumeAttachments of doctor.csi.test, none failing or stuck",
		))
		g.Expect(out).To(ContainSubstring("       controller capabilities: PUBLISH_UNPUBLISH_VOLUME, PUBLISH_READONLY"))
		g.Expect(out).To(HaveSuffix("doctor: healthy: 8 ok, 0 warnings, 0 failed, 0 skipped\n"))
	})

	t.Run("healthy, JSON", func(t *testing.T) {
		g := NewWithT(t)
		exit, out := e.run(e.admin, "--output=json")
		g.Expect(exit).To(Equal(0))
		var report Report
		g.Expect(json.Unmarshal([]byte(out), &report)).To(Succeed())
		g.Expect(report.ExitCode).To(Equal(0))
		g.Expect(report.Summary).To(Equal(Summary{OK: 8}))
		g.Expect(report.Driver).To(PointTo(MatchFields(IgnoreExtras, Fields{
			"Name": Equal(testDriver), "VendorVersion": Equal("1.0.0"), "Mode": Equal("full"),
			"PluginCapabilities": Equal([]string{"CONTROLLER_SERVICE"}),
		})))
		g.Expect(report.Results).To(HaveLen(8))
		g.Expect(report.Results[0].Details).To(ContainElement(HavePrefix("controller capabilities: ")))
		g.Expect(report.Results[4]).To(Equal(Result{Check: CheckSecretWatchName, Status: StatusOK, Message: secretWatchOn}))
	})

	t.Run("driver socket missing", func(t *testing.T) {
		g := NewWithT(t)
		t.Setenv("CSI_PROBE_TIMEOUT", "1s")
		var stdout, stderr bytes.Buffer
		start := time.Now()
		missing := filepath.Join(e.dir, "missing.sock")
		exit := Main([]string{"--csi-address=" + missing, "--kubeconfig=" + e.admin, "--leader-election", "--leader-election-namespace=default"},
			&stdout, &stderr)
		t.Logf("exit %d\n%s%s", exit, stdout.String(), stderr.String())
		g.Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second))
		g.Expect(exit).To(Equal(1))
		g.Expect(lines(stdout.String())).To(ConsistOf(
			"FAIL driver: cannot reach the CSI driver at unix://"+missing+" within 2s: the socket file does not exist. "+
				"Check that the driver's controller container is running and healthy, that it serves on this socket, "+
				"and that --csi-address names the socket in the volume both containers mount",
			HavePrefix("OK   api: "),
			// Without the driver's name, the Lease right is checked for any name.
			"OK   rights: all 20 API rights the attacher needs are granted to admin",
			// The Secret watch rights do not depend on the driver.
			"OK   secret-watch: "+secretWatchOn,
			"SKIP csidriver: the driver's name is unknown because the driver check failed",
			"SKIP csinodes: the driver's name is unknown because the driver check failed",
			"SKIP attachments: the driver's name is unknown because the driver check failed",
		))
		g.Expect(stdout.String()).To(HaveSuffix("doctor: BROKEN: 3 ok, 0 warnings, 1 failed, 3 skipped\n"))
	})

	t.Run("without leader election, another attacher holds the Lease", func(t *testing.T) {
		g := NewWithT(t)
		exit, out := e.run(e.admin, "--leader-election=false")
		g.Expect(exit).To(Equal(0))
		g.Expect(out).To(ContainSubstring("OK   leader-election: off; no attacher of doctor.csi.test holds the Lease " +
			"default/external-attacher-leader-doctor-csi-test. Run one replica only, or pass --leader-election to every replica\n"))

		now := metav1.NewMicroTime(time.Now())
		e.create(t, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "external-attacher-leader-doctor-csi-test", Namespace: "default"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("csi-hostpathplugin-0_5f1c"), LeaseDurationSeconds: ptr.To[int32](15),
				AcquireTime: &now, RenewTime: &now},
		})
		exit, out = e.run(e.admin, "--leader-election=false")
		g.Expect(exit).To(Equal(1))
		g.Expect(out).To(MatchRegexp(`FAIL leader-election: another attacher of doctor\.csi\.test is active: csi-hostpathplugin-0_5f1c holds ` +
			`the Lease default/external-attacher-leader-doctor-csi-test, renewed \d+s ago, while this one runs without --leader-election`))

		// With leader election the Lease is its business: no such line.
		_, out = e.run(e.admin)
		g.Expect(out).NotTo(ContainSubstring("leader-election:"))
	})

	t.Run("attachRequired=false", func(t *testing.T) {
		g := NewWithT(t)
		// attachRequired is immutable: replace the object, then put the
		// healthy one back.
		g.Expect(e.k8s.Delete(ctx, csiDriverObject(true))).To(Succeed())
		t.Cleanup(func() { NewWithT(t).Expect(e.k8s.Create(ctx, csiDriverObject(true))).To(Succeed()) })
		e.create(t, csiDriverObject(false))
		exit, out := e.run(e.admin)
		g.Expect(exit).To(Equal(0), "a warning alone does not fail")
		g.Expect(out).To(ContainSubstring("WARN csidriver: CSIDriver doctor.csi.test has attachRequired=false: " +
			"Kubernetes will never create VolumeAttachments for this driver"))
		g.Expect(out).To(HaveSuffix("doctor: healthy with warnings: 7 ok, 1 warnings, 0 failed, 0 skipped\n"))
	})

	t.Run("no CSIDriver object", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(e.k8s.Delete(ctx, csiDriverObject(true))).To(Succeed())
		t.Cleanup(func() { NewWithT(t).Expect(e.k8s.Create(ctx, csiDriverObject(true))).To(Succeed()) })
		g.Eventually(func() error {
			return e.k8s.Get(ctx, client.ObjectKey{Name: testDriver}, &storagev1.CSIDriver{})
		}).ShouldNot(Succeed())
		exit, out := e.run(e.admin)
		g.Expect(exit).To(Equal(0))
		g.Expect(out).To(ContainSubstring("OK   csidriver: no CSIDriver object doctor.csi.test: Kubernetes then requires attach"))
	})

	t.Run("CSINode without the driver", func(t *testing.T) {
		g := NewWithT(t)
		node := csiNode("node-c", "other.csi.test")
		e.create(t, &node)
		exit, out := e.run(e.admin)
		g.Expect(exit).To(Equal(0))
		g.Expect(out).To(ContainSubstring("WARN csinodes: 1 of 3 CSINodes lack driver doctor.csi.test: volumes cannot be attached to them until the driver's node plugin registers there"))
		g.Expect(out).To(ContainSubstring("ignore nodes the driver does not run on)\n       node-c\n"))
	})

	t.Run("VolumeAttachment with an attach error", func(t *testing.T) {
		g := NewWithT(t)
		va := &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: "va-failed"},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: testDriver, NodeName: "node-b",
				Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-failed")}},
		}
		e.create(t, va)
		msg := "rpc error: code = ResourceExhausted desc = node node-b has no free attachment slot " + strings.Repeat("z", 300)
		va.Status.AttachError = &storagev1.VolumeError{Time: metav1.Now(), Message: msg}
		g.Expect(e.k8s.Status().Update(ctx, va)).To(Succeed())
		exit, out := e.run(e.admin)
		g.Expect(exit).To(Equal(0))
		g.Expect(out).To(ContainSubstring("WARN attachments: 1 of 2 VolumeAttachments of doctor.csi.test need attention: 1 with errors."))
		g.Expect(out).To(ContainSubstring("       va-failed (pv pv-failed, node node-b): attach error: " + msg[:MaxErrorLength] + "...\n"))
	})

	t.Run("user without rights", func(t *testing.T) {
		g := NewWithT(t)
		nobody := e.kubeconfig(envtest.User{Name: "nobody"})
		exit, out := e.run(nobody)
		g.Expect(exit).To(Equal(1))
		var fails, warns []string
		for _, l := range lines(out) {
			if strings.HasPrefix(l, "FAIL rights: nobody may not ") {
				fails = append(fails, l)
			}
			if strings.HasPrefix(l, "WARN rights: nobody may not ") {
				warns = append(warns, l)
			}
		}
		g.Expect(fails).To(HaveLen(15), "one FAIL per required right")
		g.Expect(warns).To(HaveLen(5), "one WARN per optional right: get secrets, create and patch events, list and watch the Lease")
		g.Expect(out).To(ContainSubstring("FAIL rights: nobody may not patch volumeattachments/status.storage.k8s.io: " +
			"grant it in the ClusterRole external-attacher-runner (config/rbac/role.yaml)"))
		g.Expect(out).To(ContainSubstring("FAIL rights: nobody may not update leases.coordination.k8s.io/external-attacher-leader-doctor-csi-test in namespace default"))
		g.Expect(out).To(ContainSubstring("OK   secret-watch: " + secretWatchOff + "\n" +
			"       not granted: list secrets\n       not granted: watch secrets\n"))
		g.Expect(out).To(ContainSubstring("SKIP csidriver: not allowed to get CSIDriver doctor.csi.test"))
		g.Expect(out).To(ContainSubstring("SKIP csinodes: not allowed to list CSINodes"))
		g.Expect(out).To(ContainSubstring("SKIP attachments: not allowed to list VolumeAttachments"))
		g.Expect(out).To(HaveSuffix("doctor: BROKEN: 4 ok, 5 warnings, 15 failed, 3 skipped\n"))
	})

	t.Run("the rights of config/rbac are exactly enough", func(t *testing.T) {
		g := NewWithT(t)
		const user = "system:serviceaccount:default:csi-attacher-doctor"
		bindRBAC(t, e, user)
		// As the attacher's service account, impersonated from the admin's
		// kubeconfig. The authorizer sees new bindings within moments.
		var exit int
		var out string
		g.Eventually(func() int {
			exit, out = e.run(e.admin, "--as="+user)
			return exit
		}).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(0))
		g.Expect(out).To(ContainSubstring("OK   rights: all 20 API rights the attacher needs are granted to " + user))
		g.Expect(out).To(ContainSubstring("OK   secret-watch: "+secretWatchOff+"\n"),
			"the default RBAC grants get on secrets only")
		g.Expect(out).To(ContainSubstring("SKIP csidriver: not allowed to get CSIDriver doctor.csi.test"),
			"the attacher never reads CSIDrivers, so its role does not allow it")
		g.Expect(out).To(ContainSubstring("OK   csinodes: all 2 CSINodes"))
		g.Expect(out).To(HaveSuffix("doctor: healthy: 7 ok, 0 warnings, 0 failed, 1 skipped\n"))

		// The optional role of config/rbac turns the watch on.
		bindSecretWatch(t, e, user)
		g.Eventually(func() string {
			_, out = e.run(e.admin, "--as="+user)
			return out
		}).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(
			ContainSubstring("OK   secret-watch: " + secretWatchOn + "\n"))
		g.Expect(out).To(ContainSubstring("OK   rights: all 20 API rights the attacher needs are granted to " + user))
	})

	t.Run("trivial driver", func(t *testing.T) {
		g := NewWithT(t)
		cfg := fake.DefaultConfig(testDriver)
		cfg.PublishUnpublish = false
		driver := fake.New(cfg)
		socket := filepath.Join(e.dir, "trivial.sock")
		g.Expect(driver.Start(socket)).To(Succeed())
		t.Cleanup(driver.Stop)
		var stdout, stderr bytes.Buffer
		exit := Main([]string{"--csi-address=unix://" + socket, "--kubeconfig=" + e.admin, "--leader-election", "--leader-election-namespace=default"},
			&stdout, &stderr)
		t.Logf("exit %d\n%s%s", exit, stdout.String(), stderr.String())
		g.Expect(exit).To(Equal(0))
		g.Expect(lines(stdout.String())).To(ContainElements(
			HavePrefix("OK   mode: trivial: the driver lacks PUBLISH_UNPUBLISH_VOLUME"),
			"SKIP secret-watch: trivial mode: the attacher never calls ControllerPublishVolume, so it reads no Secrets and never watches them",
		))
		g.Expect(stdout.String()).To(HaveSuffix("doctor: healthy: 7 ok, 0 warnings, 0 failed, 1 skipped\n"))
	})
}

// The secret-watch verdicts, with the default --retry-interval-max.
const (
	secretWatchOn  = "Secret watch on: a created or fixed controllerPublish Secret retries its VolumeAttachments at once"
	secretWatchOff = "Secret watch off (the shipped RBAC grants get on secrets only, by design): a fixed Secret is " +
		"picked up at the next retry, within --retry-interval-max (30s); apply config/rbac/secret_watch_role.yaml " +
		"and secret_watch_role_binding.yaml for immediate retries"
)

// bindRBAC creates the ClusterRole and Role of config/rbac, under test
// names, and binds them to user (the Role in namespace default).
func bindRBAC(t *testing.T, e *doctorEnv, user string) {
	g := NewWithT(t)
	load := func(file string, obj any) {
		data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", file))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(yaml.UnmarshalStrict(data, obj)).To(Succeed(), file)
	}
	cr := &rbacv1.ClusterRole{}
	load("role.yaml", cr)
	role := &rbacv1.Role{}
	load("leader_election_role.yaml", role)
	cr.Name = "doctor-test-runner"
	role.Name, role.Namespace = "doctor-test-cfg", "default"
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	e.create(t, cr)
	e.create(t, role)
	e.create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}})
	e.create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: "default"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}})
}

// bindSecretWatch creates the optional ClusterRole of
// config/rbac/secret_watch_role.yaml, under a test name, and binds it to user.
func bindSecretWatch(t *testing.T, e *doctorEnv, user string) {
	g := NewWithT(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "secret_watch_role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	cr := &rbacv1.ClusterRole{}
	g.Expect(yaml.UnmarshalStrict(data, cr)).To(Succeed())
	cr.Name = "doctor-test-secret-watch"
	e.create(t, cr)
	e.create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: cr.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}})
}
