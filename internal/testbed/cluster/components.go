package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// Controllers is what kube-controller-manager runs: the flow from a Pod to
// its volume attached and back, and nothing else. The service-account
// controller creates each namespace's default ServiceAccount, which the
// API server's ServiceAccount admission plugin requires of every Pod.
var Controllers = []string{
	"persistentvolume-attach-detach-controller",
	"persistentvolume-binder-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
	"statefulset-controller",
	"replicaset-controller",
	"garbage-collector-controller",
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"pod-garbage-collector-controller",
	"serviceaccount-controller",
}

func (c *Cluster) startControllerManager() error {
	c.logf("starting kube-controller-manager")
	_, err := c.start("kube-controller-manager", filepath.Join(c.Assets, "kube-controller-manager"), []string{
		"--kubeconfig=" + c.Kubeconfig("kube-controller-manager"),
		"--controllers=" + strings.Join(Controllers, ","),
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		// Its clients default to 20 QPS, which would make the test bed's
		// own control plane the bottleneck of a rollout of hundreds of Pods.
		"--kube-api-qps=500", "--kube-api-burst=1000",
		"--concurrent-statefulset-syncs=20",
		"--v=2",
	})
	return err
}

func (c *Cluster) startScheduler() error {
	c.logf("starting kube-scheduler")
	_, err := c.start("kube-scheduler", filepath.Join(c.Assets, "kube-scheduler"), []string{
		"--kubeconfig=" + c.Kubeconfig("kube-scheduler"),
		"--secure-port=0",
		"--leader-elect=false",
		// Its default 50 QPS paces the bindings and Events of a rollout
		// of hundreds of Pods, which then hides everything after it.
		"--kube-api-qps=500", "--kube-api-burst=1000",
		"--v=2",
	})
	return err
}

func (c *Cluster) startKwok() error {
	c.logf("starting kwok")
	ports, err := testbed.FreePorts(1)
	if err != nil {
		return err
	}
	_, err = c.start("kwok", filepath.Join(c.Assets, "kwok-"+c.KwokVersion), []string{
		"--kubeconfig=" + c.Kubeconfig("kwok"),
		"--config=" + filepath.Join(c.Assets, "kwok-stages-"+c.KwokVersion+".yaml"),
		"--manage-all-nodes=true",
		"--cidr=10.0.0.1/16",
		"--node-ip=10.0.0.1",
		"--node-lease-duration-seconds=40",
		fmt.Sprintf("--server-address=127.0.0.1:%d", ports[0]),
	})
	return err
}

// Driver is the fake CSI driver (hack/fakedriver) as a process of its
// own. Its publications and their history live in a state file that
// survives its restarts, and every call is logged to a file of JSON lines.
type Driver struct {
	*testbed.Process
	c       *Cluster
	stopped bool
}

// Socket is the path of the driver's unix socket.
func (c *Cluster) Socket() string { return filepath.Join(c.Dir, testbed.SocketName) }

// StateFile and CallsFile are the driver's records (see ReadDriver).
func (c *Cluster) StateFile() string { return filepath.Join(c.Dir, "driver-state.json") }

// CallsFile is the driver's call log, one JSON line per call.
func (c *Cluster) CallsFile() string { return filepath.Join(c.Dir, "driver-calls.jsonl") }

func (c *Cluster) startDriver() (*Driver, error) {
	args := []string{
		"--csi-address=" + c.Socket(),
		"--driver-name=" + c.Driver,
		"--state-file=" + c.StateFile(),
		"--calls-file=" + c.CallsFile(),
		"--quiet",
		"--full-nodes-file=" + c.fullNodesFile(),
		"--publish-latency=" + c.PublishLatency.String(),
		"--unpublish-latency=" + c.UnpublishLatency.String(),
	}
	if c.Driver == DefaultDriver {
		args = append(args, "--gce-pd-volume-ids")
	}
	if c.FinishAbandoned {
		args = append(args, "--finish-abandoned-calls")
	}
	p, err := c.start("fakedriver", c.DriverBin, args)
	if err != nil {
		return nil, err
	}
	d := &Driver{Process: p, c: c}
	err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, startTimeout, true, func(context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("the fake driver exited: %s (log %s)", testbed.ExitStatus(p.Err()), c.LogPath("fakedriver"))
		}
		_, err := os.Stat(c.Socket())
		return err == nil, nil
	})
	return d, err
}

// fullNodesFile lists the node IDs the driver treats as full (SetFullNodes).
func (c *Cluster) fullNodesFile() string { return filepath.Join(c.Dir, "full-nodes") }

// SetFullNodes makes the driver answer every publish to these nodes with
// ResourceExhausted, as a node at its attach limit does, until it is called
// again without them. The driver reads the list every 200 ms; SetFullNodes
// returns once it surely has.
func (c *Cluster) SetFullNodes(nodes []string) error {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(NodeID(n) + "\n")
	}
	tmp := c.fullNodesFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.fullNodesFile()); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

// Stop stops the driver gracefully: calls in flight finish first.
func (d *Driver) Stop() {
	d.stopped = true
	d.Process.Stop(10 * time.Second)
}

// RestartDriver stops the driver and starts it again on the same socket,
// with the publications it had.
func (c *Cluster) RestartDriver() error {
	c.driver.Stop()
	d, err := c.startDriver()
	if err != nil {
		return err
	}
	c.driver = d
	return nil
}

// Attacher is one replica of the attacher, the binary built from the tree.
type Attacher struct {
	*testbed.Process
	Endpoints testbed.Endpoints
	stopped   bool
}

// Stop sends SIGTERM and waits for the graceful shutdown to end, which
// may take as long as the CSI calls in flight.
func (a *Attacher) Stop() {
	a.stopped = true
	a.Process.Stop(2 * time.Minute)
}

// Kill ends the replica with SIGKILL, as a crash or an OOM kill would.
func (a *Attacher) Kill() {
	a.stopped = true
	a.Process.Kill()
}

// Pid is the replica's process ID, which the driver records on each call.
func (a *Attacher) Pid() int { return a.Cmd.Process.Pid }

// Exits tells the test bed that the replica is expected to exit on its
// own (it lost its Lease), so that its exit is no failure.
func (a *Attacher) Exits() { a.stopped = true }

// Ready reports whether the replica's /readyz answers OK.
func (a *Attacher) Ready() bool { return testbed.Ready(a.Endpoints.ReadyzURL()) }

// Attachers returns the replicas started so far that have not been stopped.
func (c *Cluster) Attachers() []*Attacher {
	var out []*Attacher
	for _, a := range c.attachers {
		if !a.stopped {
			out = append(out, a)
		}
	}
	return out
}

// StartAttacher starts one more replica of the attacher with the flags of
// the shipped manifest (ManifestArgs), pointed at the local driver socket,
// kubeconfig and ports, and waits until it has started its HTTP servers.
// Whether it leads is up to leader election.
func (c *Cluster) StartAttacher(ctx context.Context) (*Attacher, error) {
	return c.StartAttacherWith(ctx, AttacherOptions{})
}

// AttacherOptions change how StartAttacherWith runs a replica.
type AttacherOptions struct {
	// Kubeconfig replaces the replica's kubeconfig, e.g. with one that
	// reaches the API server through a Proxy (KubeconfigVia).
	Kubeconfig string
	// Args are added after the manifest's; a flag given again wins.
	Args []string
}

// StartAttacherWith is StartAttacher with options.
func (c *Cluster) StartAttacherWith(ctx context.Context, o AttacherOptions) (*Attacher, error) {
	manifest, err := ManifestArgs(c.Root)
	if err != nil {
		return nil, err
	}
	ep, err := testbed.FreeEndpoints()
	if err != nil {
		return nil, err
	}
	kubeconfig := c.Kubeconfig("csi-attacher")
	if o.Kubeconfig != "" {
		kubeconfig = o.Kubeconfig
	}
	args := []string{"--kubeconfig=" + kubeconfig}
	for _, a := range manifest {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--csi-address":
			a = "--csi-address=" + c.Socket()
		case "--metrics-addr", "--metrics-address":
			a = name + "=" + ep.Metrics
		case "--health-probe-bind-address":
			a = name + "=" + ep.Health
		case "--http-endpoint":
			// One server for metrics and probes, as the reference has.
			a = name + "=" + ep.Health
			ep.Metrics = ep.Health
		}
		args = append(args, a)
	}
	args = append(args, o.Args...)
	c.seq++
	name := fmt.Sprintf("csi-attacher-%d", c.seq)
	c.logf("starting %s: %s", name, strings.Join(args, " "))
	p, err := c.start(name, c.AttacherBin, args, "POD_NAMESPACE="+AttacherNamespace, "POD_NAME="+name)
	if err != nil {
		return nil, err
	}
	a := &Attacher{Process: p, Endpoints: ep}
	c.attachers = append(c.attachers, a)
	// /healthz answers as soon as the process is up; a standby replica is
	// never ready to attach, so readiness is not waited for here.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, startTimeout, true, func(context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited: %s (log %s)", name, testbed.ExitStatus(p.Err()), c.LogPath(name))
		}
		return testbed.Ready("http://" + ep.Health + "/healthz"), nil
	})
	return a, err
}

// ManifestArgs returns the flags of the csi-attacher container as the
// shipped manifests deploy it: the flags the sidecar Component puts in its
// command (config/components/sidecar/attacher.yaml) followed by the args of
// the sample driver's own attacher container
// (config/samples/fakedriver/driver.yaml), which the Component keeps, so
// the suite runs the attacher exactly as it is deployed.
func ManifestArgs(root string) ([]string, error) {
	component := filepath.Join(root, "config", "components", "sidecar", "attacher.yaml")
	var pod corev1.Pod
	if err := readManifest(component, &pod); err != nil {
		return nil, err
	}
	c, err := attacherContainer(component, pod.Spec)
	if err != nil {
		return nil, err
	}
	if len(c.Command) < 2 {
		return nil, fmt.Errorf("%s: the csi-attacher container's command has no flags", component)
	}
	sample := filepath.Join(root, "config", "samples", "fakedriver", "driver.yaml")
	var d appsv1.Deployment
	if err := readManifest(sample, &d); err != nil {
		return nil, err
	}
	vendor, err := attacherContainer(sample, d.Spec.Template.Spec)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(c.Command[1:]), vendor.Args...), nil
}

func readManifest(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func attacherContainer(path string, pod corev1.PodSpec) (corev1.Container, error) {
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "csi-attacher" })
	if i < 0 {
		return corev1.Container{}, fmt.Errorf("%s: no container named csi-attacher", path)
	}
	return pod.Containers[i], nil
}
