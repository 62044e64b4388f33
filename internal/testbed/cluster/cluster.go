package cluster

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// Names the test bed gives the objects it creates.
const (
	// DefaultDriver is the fake driver's name: the CSI migration target of
	// the in-tree GCE PD plugin, so one driver serves CSI volumes and
	// migrated gcePersistentDisk volumes alike.
	DefaultDriver = "pd.csi.storage.gke.io"
	// AttacherNamespace holds the attacher's leader-election Lease, as the
	// namespace of its Pod would.
	AttacherNamespace = "csi-attacher"
	// AttacherServiceAccount runs the attacher in AttacherNamespace, as the
	// shipped manifests' Pod does; the attacher authenticates as its user,
	// AttacherUser, which holds only the rights of config/rbac.
	AttacherServiceAccount = "csi-attacher"
	AttacherUser           = "system:serviceaccount:" + AttacherNamespace + ":" + AttacherServiceAccount
	// StorageClass is the class of the statically provisioned volumes.
	StorageClass = "e2e-static"
	// Zone is the zone label of every node, and the zone of the migrated
	// GCE PD volumes.
	Zone = "e2e-zone-a"
	// Project is the GCE project in the nodes' IDs.
	Project = "e2e-project"
	// GCEPDPlugin is the in-tree plugin whose volumes the driver serves
	// through CSI migration.
	GCEPDPlugin = "kubernetes.io/gce-pd"
	// MigratedPluginsAnnotation on a CSINode lists the in-tree plugins its
	// node serves through CSI; kube-controller-manager reads it.
	MigratedPluginsAnnotation = "storage.alpha.kubernetes.io/migrated-plugins"
	// ControllerManagedAnnotation on a Node hands its attach and detach to
	// kube-controller-manager.
	ControllerManagedAnnotation = "volumes.kubernetes.io/controller-managed-attach-detach"
)

// startTimeout bounds the start of each component on a loaded two-core
// machine.
const startTimeout = 2 * time.Minute

// Options configure a test bed.
type Options struct {
	// Root is the repository: the attacher is built from it and its
	// config/ supplies the attacher's flags and RBAC.
	Root string
	// Assets holds kube-apiserver, etcd, kube-controller-manager,
	// kube-scheduler and kwok (hack/install-envtest.sh e2e).
	Assets string
	// KwokVersion names the kwok binary and stages in Assets.
	KwokVersion string
	// Nodes is the number of simulated nodes.
	Nodes int
	// Driver is the fake driver's name; DefaultDriver when empty.
	Driver string
	// Log receives progress lines; io.Discard when nil.
	Log io.Writer
	// PublishLatency and UnpublishLatency delay every ControllerPublish and
	// ControllerUnpublish of the fake driver, as a real backend takes time.
	PublishLatency, UnpublishLatency time.Duration
	// FinishAbandoned makes the fake driver finish every call even when
	// its caller gives up, as a real backend does.
	FinishAbandoned bool
	// AuditAttacher writes an audit log of the attacher's own writes, to
	// count them per volume.
	AuditAttacher bool
}

// Cluster is a running test bed: etcd and kube-apiserver (through
// envtest), kube-controller-manager, kube-scheduler, kwok, the fake CSI
// driver and the attacher, each a process of its own.
type Cluster struct {
	Options
	// Dir holds the kubeconfigs, the driver's socket, state and call log,
	// and every component's log.
	Dir string
	// Env is the envtest control plane.
	Env *envtest.Environment
	// Client is a cluster-admin client for the tests.
	Client client.Client
	// Config is Client's configuration.
	Config *rest.Config

	// AttacherBin and DriverBin are the binaries built from the tree.
	AttacherBin, DriverBin string

	procs     map[string]*testbed.Process
	attachers []*Attacher
	driver    *Driver
	seq       int
}

// Scheme knows the built-in kinds.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.Log, "%s e2e: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Start builds the attacher and the fake driver, starts the control plane
// and every component, and creates the objects a cluster has before any
// workload: the nodes, their CSINodes, the CSIDriver, the StorageClass and
// the attacher's RBAC. One attacher replica is started; StartAttacher adds
// more.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Driver == "" {
		opts.Driver = DefaultDriver
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	dir, err := testbed.TempDir("csi-e2e-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Options: opts, Dir: dir, procs: map[string]*testbed.Process{}}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("%w (logs in %s)", err, c.Dir)
		}
	}()

	c.AttacherBin, c.DriverBin = filepath.Join(dir, "csi-attacher"), filepath.Join(dir, "fakedriver")
	waitAttacher := testbed.BuildAttacher(ctx, opts.Root, c.AttacherBin)
	waitDriver := testbed.Build(ctx, opts.Root, c.DriverBin, "./hack/fakedriver")

	if err := c.startControlPlane(); err != nil {
		return nil, err
	}
	if err := c.createBase(ctx); err != nil {
		return nil, err
	}
	for _, component := range []func() error{c.startControllerManager, c.startScheduler, c.startKwok} {
		if err := component(); err != nil {
			return nil, err
		}
	}
	if err := c.createNodes(ctx); err != nil {
		return nil, err
	}
	for _, wait := range []func() (time.Duration, error){waitAttacher, waitDriver} {
		if _, err := wait(); err != nil {
			return nil, err
		}
	}
	if c.driver, err = c.startDriver(); err != nil {
		return nil, err
	}
	if _, err := c.StartAttacher(ctx); err != nil {
		return nil, err
	}
	c.logf("cluster up in %s: %d nodes, driver %s", c.Dir, c.Nodes, c.Driver)
	return c, nil
}

// startControlPlane starts etcd and kube-apiserver with the default
// admission plugins (envtest turns ServiceAccount off; here it stays on,
// and kube-controller-manager creates the default ServiceAccounts), and
// writes a kubeconfig per component, each its own user.
func (c *Cluster) startControlPlane() error {
	env := testbed.NewEnvironment(c.Assets, startTimeout)
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Disable("disable-admission-plugins")
	if c.AuditAttacher {
		policy := filepath.Join(c.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return err
		}
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", c.AuditLog())
		args.Set("audit-log-format", "json")
	}
	c.logf("starting etcd and kube-apiserver")
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	c.Env = env
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	cl, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return err
	}
	c.Client, c.Config = cl, cfg

	masters := []string{"system:masters"}
	for name, user := range map[string]envtest.User{
		"kube-controller-manager": {Name: "system:kube-controller-manager", Groups: masters},
		"kube-scheduler":          {Name: "system:kube-scheduler", Groups: masters},
		"kwok":                    {Name: "kwok", Groups: masters},
		"csi-attacher":            {Name: AttacherUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + AttacherNamespace, "system:authenticated"}},
	} {
		if err := testbed.WriteUserKubeconfig(env, user, c.Kubeconfig(name)); err != nil {
			return err
		}
	}
	return nil
}

// auditPolicy logs the attacher's own writes, and nothing else: the API
// server's request metrics cannot tell them from kube-controller-manager's
// writes to the same VolumeAttachments and PersistentVolumes.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["` + AttacherUser + `"]
  verbs: ["create", "update", "patch", "delete"]
- level: None
`

// AuditLog is the path of the audit log (Options.AuditAttacher).
func (c *Cluster) AuditLog() string { return filepath.Join(c.Dir, "audit.log") }

// Kubeconfig is the path of a component's kubeconfig.
func (c *Cluster) Kubeconfig(component string) string {
	return filepath.Join(c.Dir, component+".kubeconfig")
}

// KubeconfigVia writes a copy of a component's kubeconfig that reaches the
// API server through addr (a Proxy) and returns its path. The API server's
// certificate is for 127.0.0.1, as the proxy's address is.
func (c *Cluster) KubeconfigVia(component, addr string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig(component))
	if err != nil {
		return "", err
	}
	for _, cl := range cfg.Clusters {
		u, err := url.Parse(cl.Server)
		if err != nil {
			return "", err
		}
		u.Host = addr
		cl.Server = u.String()
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("%s-via-%s.kubeconfig", component, strings.ReplaceAll(addr, ":", "-")))
	return path, clientcmd.WriteToFile(*cfg, path)
}

// APIServerAddr is the API server's host:port.
func (c *Cluster) APIServerAddr() (string, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// LogPath is the path of a component's log.
func (c *Cluster) LogPath(name string) string { return filepath.Join(c.Dir, name+".log") }

// start runs a component, its output going to its log.
func (c *Cluster) start(name, bin string, args []string, env ...string) (*testbed.Process, error) {
	out, err := os.OpenFile(c.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p, err := testbed.Start(name, bin, args, out, env...)
	if err != nil {
		return nil, err
	}
	c.procs[name] = p
	return p, nil
}

// LogNames returns the names of the components that have a log, for
// LogPath: the attacher replicas last.
func (c *Cluster) LogNames() []string {
	names := []string{"kube-controller-manager", "kube-scheduler", "kwok", "fakedriver"}
	for _, a := range c.attachers {
		names = append(names, a.Name)
	}
	return names
}

// Stop stops every component, the attachers and the driver first, and
// removes nothing: Dir keeps the logs for a failed run; RemoveDir deletes
// them.
func (c *Cluster) Stop() {
	for _, a := range c.attachers {
		a.Stop()
	}
	if c.driver != nil {
		c.driver.Stop()
	}
	for _, name := range []string{"kwok", "kube-scheduler", "kube-controller-manager"} {
		if p := c.procs[name]; p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if c.Env != nil {
		_ = c.Env.Stop()
	}
}

// RemoveDir deletes Dir, for a run whose logs are not needed.
func (c *Cluster) RemoveDir() { _ = os.RemoveAll(c.Dir) }

// Exited returns the components that have exited, with their status: none
// of them should, unless a test stopped it.
func (c *Cluster) Exited() []string {
	var out []string
	for name, p := range c.procs {
		if p.Exited() && !c.stopped(name) {
			out = append(out, fmt.Sprintf("%s: %s", name, testbed.ExitStatus(p.Err())))
		}
	}
	return out
}

// stopped reports whether a test stopped the named process on purpose.
func (c *Cluster) stopped(name string) bool {
	for _, a := range c.attachers {
		if a.Name == name {
			return a.stopped
		}
	}
	if c.driver != nil && c.driver.Name == name {
		return c.driver.stopped
	}
	return false
}

// createBase creates what the components need before they start: the
// attacher's namespace and RBAC (config/rbac, bound to AttacherUser), the
// CSIDriver and the StorageClass.
func (c *Cluster) createBase(ctx context.Context) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: AttacherNamespace}},
		&storagev1.CSIDriver{
			ObjectMeta: metav1.ObjectMeta{Name: c.Driver},
			Spec:       storagev1.CSIDriverSpec{AttachRequired: ptr.To(true), PodInfoOnMount: ptr.To(false)},
		},
		&storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: StorageClass},
			Provisioner:       "kubernetes.io/no-provisioner",
			ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
			VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
		},
	}
	rbac, err := c.attacherRBAC()
	if err != nil {
		return err
	}
	for _, o := range append(objs, rbac...) {
		if err := c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// attacherRBAC returns config/rbac's ClusterRole and leader-election Role,
// with bindings to the attacher's ServiceAccount user, as the shipped
// manifests grant them.
func (c *Cluster) attacherRBAC() ([]client.Object, error) {
	cr := &rbacv1.ClusterRole{}
	role := &rbacv1.Role{}
	for file, obj := range map[string]any{"role.yaml": cr, "leader_election_role.yaml": role} {
		data, err := os.ReadFile(filepath.Join(c.Root, "config", "rbac", file))
		if err != nil {
			return nil, err
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			return nil, fmt.Errorf("config/rbac/%s: %w", file, err)
		}
	}
	role.Namespace = AttacherNamespace
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: AttacherServiceAccount, Namespace: AttacherNamespace}}
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: AttacherServiceAccount, Namespace: AttacherNamespace}},
		cr, role,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: cr.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
			Subjects:   subjects,
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: AttacherNamespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   subjects,
		},
	}, nil
}
