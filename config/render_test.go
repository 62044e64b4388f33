package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

const (
	// repoRoot is the repository, from this package; the tests name
	// directories relative to it ("config/default").
	repoRoot  = ".."
	configDir = repoRoot + "/config"
	// attacherContainer is the container name every manifest uses, and the
	// key the sidecar Component's patch merges on.
	attacherContainer = "csi-attacher"
	// The reference attacher's RBAC names, which config/rbac keeps.
	clusterRoleName    = "external-attacher-runner"
	clusterBindingName = "csi-attacher-role"
	leaseRoleName      = "external-attacher-cfg"
	leaseBindingName   = "csi-attacher-role-cfg"
	// serviceName is the metrics Service of the sidecar Component.
	serviceName = "csi-attacher-metrics"
	// componentDir is the sidecar Component, and settingsName the
	// local-config ConfigMap an overlay gives it its inputs with.
	componentDir = "config/components/sidecar"
	settingsName = "csi-attacher-sidecar"
)

// complete are the kustomizations that deploy a working attacher: a driver
// and the attacher in one Pod, with all of the attacher's RBAC.
var complete = []string{"config/default", "config/samples"}

// kustomizeBinary is $KUSTOMIZE (set by `make manifests-check`), else what
// hack/install-tools.sh builds or has built.
func kustomizeBinary(t *testing.T) string {
	t.Helper()
	if k := os.Getenv("KUSTOMIZE"); k != "" {
		return k
	}
	out, err := exec.Command(repoRoot+"/hack/install-tools.sh", "kustomize").Output()
	if err != nil {
		t.Fatalf("hack/install-tools.sh kustomize: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// kustomizations lists every directory under config/ with a
// kustomization.yaml, as "config/..." paths.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(configDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			// The fixtures: drivers' overlays the Component tests render
			// themselves, one of which must fail to build.
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "kustomization.yaml" {
			rel, err := filepath.Rel(configDir, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, path.Join("config", filepath.ToSlash(rel)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// rendered is the output of one `kustomize build`, by kind.
type rendered struct {
	dir             string
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	roleBindings    []rbacv1.RoleBinding
	clusterBindings []rbacv1.ClusterRoleBinding
	services        []corev1.Service
	// workloads are the Pod templates of Deployments and StatefulSets.
	workloads []workload
	// objects are all the objects, by kind, namespace and name, as decoded
	// YAML, in the order of the output.
	objects []object
}

// object is one rendered object.
type object struct {
	kind, namespace, name string
	doc                   map[string]any
}

func (o object) id() string { return o.kind + " " + o.namespace + "/" + o.name }

type workload struct {
	kind, name, namespace string
	pod                   corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + " " + w.namespace + "/" + w.name }

func render(t *testing.T, kustomize, dir string) rendered {
	t.Helper()
	out, err := build(kustomize, dir)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, dir, out)
}

// build runs `kustomize build` on dir, relative to the repository root.
func build(kustomize, dir string) ([]byte, error) {
	cmd := exec.Command(kustomize, "build", filepath.Join(repoRoot, dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w\n%s", dir, err, stderr.String())
	}
	return out, nil
}

// parse decodes a multi-document YAML stream, from dir, by kind.
func parse(t *testing.T, dir string, out []byte) rendered {
	t.Helper()
	r := rendered{dir: dir}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if meta.Kind == "" {
			continue // a document of comments only
		}
		var raw map[string]any
		if err := yaml.Unmarshal(doc, &raw); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		r.objects = append(r.objects, object{meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name, raw})
		decode := func(into any) {
			if err := yaml.UnmarshalStrict(doc, into); err != nil {
				t.Fatalf("%s: %s: %v", dir, meta.Kind, err)
			}
		}
		switch meta.Kind {
		case "Namespace":
			var o corev1.Namespace
			decode(&o)
			r.namespaces = append(r.namespaces, o)
		case "ServiceAccount":
			var o corev1.ServiceAccount
			decode(&o)
			r.serviceAccounts = append(r.serviceAccounts, o)
		case "RoleBinding":
			var o rbacv1.RoleBinding
			decode(&o)
			r.roleBindings = append(r.roleBindings, o)
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			decode(&o)
			r.clusterBindings = append(r.clusterBindings, o)
		case "Service":
			var o corev1.Service
			decode(&o)
			r.services = append(r.services, o)
		case "Deployment":
			var o appsv1.Deployment
			decode(&o)
			r.workloads = append(r.workloads, workload{"Deployment", o.Name, o.Namespace, o.Spec.Template})
		case "StatefulSet":
			var o appsv1.StatefulSet
			decode(&o)
			r.workloads = append(r.workloads, workload{"StatefulSet", o.Name, o.Namespace, o.Spec.Template})
		}
	}
	return r
}

// TestEveryKustomizationRenders: kustomize builds every kustomization in
// config/, and the ones that deploy the attacher deploy a working one. A
// Component is built through the overlays that use it; alone it fails,
// naming the input it lacks.
func TestEveryKustomizationRenders(t *testing.T) {
	kustomize := kustomizeBinary(t)
	dirs := kustomizations(t)
	for _, want := range append([]string{componentDir, "config/samples/fakedriver"}, complete...) {
		if !slices.Contains(dirs, want) {
			t.Fatalf("no kustomization in %s (found %v)", want, dirs)
		}
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			if dir == componentDir {
				_, err := build(kustomize, dir)
				if err == nil || !strings.Contains(err.Error(), settingsName) {
					t.Errorf("%s built alone: %v, want an error naming the ConfigMap %s", dir, err, settingsName)
				}
				return
			}
			r := render(t, kustomize, dir)
			if !slices.Contains(complete, dir) {
				return // a driver's manifests alone, or other parts
			}
			var attachers int
			for _, w := range r.workloads {
				i := slices.IndexFunc(w.pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == attacherContainer })
				if i < 0 {
					continue
				}
				attachers++
				for _, err := range checkSidecar(r, w) {
					t.Errorf("%s: %s: %v", dir, w, err)
				}
				// The samples' own attacher container is locked down.
				driver := driverOf(w.pod.Spec, w.pod.Spec.Containers[i])
				for _, err := range checkSecurityContext(w.pod.Spec, w.pod.Spec.Containers[i], driver) {
					t.Errorf("%s: %s: %v", dir, w, err)
				}
			}
			if attachers == 0 {
				t.Errorf("%s: no Deployment or StatefulSet runs the %s container", dir, attacherContainer)
			}
		})
	}
}

// checkSidecar checks the attacher container of w and its RBAC in r.
func checkSidecar(r rendered, w workload) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pod := w.pod.Spec
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == attacherContainer })
	c := pod.Containers[i]
	args := effectiveArgs(c)

	// One shared socket volume: the socket the attacher dials is in a
	// volume the driver container mounts too, and the attacher brings no
	// volume of its own.
	socket := flagValue(args, "csi-address")
	if socket == "" {
		add("no --csi-address")
	}
	var socketVolume string
	var shared []string
	for _, m := range c.VolumeMounts {
		vi := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if vi < 0 {
			add("mounts volume %q, which the Pod does not have", m.Name)
			continue
		}
		if n := countVolumes(pod.Volumes, m.Name); n != 1 {
			add("volume %q is defined %d times", m.Name, n)
		}
		if strings.HasPrefix(socket, strings.TrimSuffix(m.MountPath, "/")+"/") {
			socketVolume = m.Name
		}
		for _, other := range pod.Containers {
			if other.Name != attacherContainer && slices.ContainsFunc(other.VolumeMounts, func(om corev1.VolumeMount) bool { return om.Name == m.Name }) {
				shared = append(shared, m.Name)
				break
			}
		}
	}
	var driver *corev1.Container
	switch {
	case socket == "":
	case socketVolume == "":
		add("the socket %s is on no volume the attacher mounts", socket)
	case !slices.Contains(shared, socketVolume):
		add("no other container mounts the socket volume %q: no driver serves %s", socketVolume, socket)
	default:
		driver = driverServing(pod, c, socketVolume, socket)
		if driver == nil {
			add("no container serves %s: none names it in its command, args or env", socket)
		}
	}
	if len(shared) != len(c.VolumeMounts) {
		add("the attacher mounts volumes %v, of which only %v are shared: it needs only the socket volume", mountNames(c), shared)
	}

	// Probes on the right port: the --http-endpoint (or, without it, the
	// --health-probe-bind-address, default :8081).
	probePort, single := 8081, false
	if ep := flagValue(args, "http-endpoint"); ep != "" {
		single = true
		probePort = portOf(ep)
	} else if hp := flagValue(args, "health-probe-bind-address"); hp != "" {
		probePort = portOf(hp)
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			add("no HTTP %s probe", name)
			continue
		}
		if got := resolvePort(c, probe.HTTPGet.Port); got != probePort {
			add("%s probe on port %s (%d), the probes are served on %d", name, probe.HTTPGet.Port.String(), got, probePort)
		}
		want := []string{"/readyz"}
		if name == "liveness" {
			want = []string{"/healthz", "/healthz/leader-election"}
		}
		if !slices.Contains(want, probe.HTTPGet.Path) {
			add("%s probe path %q, want one of %v", name, probe.HTTPGet.Path, want)
		}
		if probe.HTTPGet.Path == "/healthz/leader-election" && !single {
			add("/healthz/leader-election is served on --http-endpoint only")
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == probePort }) {
		add("no containerPort %d", probePort)
	}

	// Bounded: requests to be scheduled, a memory limit against leaks.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			add("no %s request", res)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		add("no memory limit")
	}

	// The kubelet must not kill an attacher that still waits for a CSI
	// call before it releases its Lease: the Pod's grace period exceeds
	// the attacher's graceful shutdown, which covers --timeout.
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	grace := defaultGracePeriod
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if opts, err := options.Parse(args, func(k string) string { return env[k] }, os.ReadFile); err != nil {
		add("command and args: %v", err)
	} else if need := controllers.ShutdownGracePeriod(opts.Timeout); grace <= need {
		add("the grace period %s must exceed the graceful shutdown for --timeout=%s (%s)", grace, opts.Timeout, need)
	}

	// RBAC subjects match the ServiceAccount the Pod runs under, and the
	// objects carry the driver's name.
	if driver != nil {
		errs = append(errs, checkRBAC(r, w, driverName(*driver))...)
	}
	return errs
}

// defaultGracePeriod is Kubernetes' default terminationGracePeriodSeconds.
const defaultGracePeriod = 30 * time.Second

// driverOf is the container serving the socket the attacher c dials, or nil.
func driverOf(pod corev1.PodSpec, c corev1.Container) *corev1.Container {
	socket := flagValue(effectiveArgs(c), "csi-address")
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(socket, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return driverServing(pod, c, m.Name, socket)
		}
	}
	return nil
}

// driverName is the CSI driver's name from its container's flags
// (--drivername of csi-driver-host-path, --driver-name of the fake driver).
func driverName(c corev1.Container) string {
	args := expandArgs(c)
	if n := flagValue(args, "drivername"); n != "" {
		return n
	}
	return flagValue(args, "driver-name")
}

func checkSecurityContext(pod corev1.PodSpec, c corev1.Container, driver *corev1.Container) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sc := c.SecurityContext
	if sc == nil {
		return []error{errors.New("no securityContext")}
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		add("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		add("privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		add("readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		add("capabilities: want drop [ALL] and nothing added, got %+v", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add("seccompProfile is not RuntimeDefault")
	}
	// The user is explicit: the image's default (root) is for drop-in swaps
	// of the reference's manifests, which set none.
	if sc.RunAsUser == nil {
		add("runAsUser is not set")
		return errs
	}
	uid := *sc.RunAsUser
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod.SecurityContext != nil {
		nonRoot = pod.SecurityContext.RunAsNonRoot
	}
	switch {
	case uid == 0 && nonRoot != nil && *nonRoot:
		add("runAsUser 0 with runAsNonRoot: the kubelet refuses to start it")
	case uid != 0 && (nonRoot == nil || !*nonRoot):
		add("runs as uid %d without runAsNonRoot: true", uid)
	}
	// The socket is the driver's: mode 0755 lets only its owner connect, and
	// root without CAP_DAC_OVERRIDE is no exception. A driver with no
	// explicit user is taken to run as root, as most do.
	if driver != nil {
		var driverUID int64
		if driver.SecurityContext != nil && driver.SecurityContext.RunAsUser != nil {
			driverUID = *driver.SecurityContext.RunAsUser
		} else if pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil {
			driverUID = *pod.SecurityContext.RunAsUser
		}
		if uid != driverUID {
			add("runs as uid %d, but the driver container %s, whose socket it opens, runs as uid %d", uid, driver.Name, driverUID)
		}
	}
	return errs
}

// componentNames are the objects config/components/sidecar adds for the
// driver: the reference attacher's names with the suffix -<driver>, the
// driver's name as in its Lease (volume.SanitizeDriverName).
type componentNames struct {
	clusterRole, clusterBinding, leaseRole, leaseBinding, service string
}

func namesFor(driver string) componentNames {
	suffix := "-" + volume.SanitizeDriverName(driver)
	return componentNames{
		clusterRole:    clusterRoleName + suffix,
		clusterBinding: clusterBindingName + suffix,
		leaseRole:      leaseRoleName + suffix,
		leaseBinding:   leaseBindingName + suffix,
		service:        serviceName + suffix,
	}
}

// checkRBAC checks, for the attacher of w and its CSI driver, the objects
// the Component added: bindings that name the Pod's ServiceAccount in its
// namespace, roles and bindings named after the driver, and the metrics
// Service that selects this Pod and reaches the attacher's --http-endpoint.
func checkRBAC(r rendered, w workload, driver string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := namesFor(driver)
	sa := w.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: w.namespace}
	if !slices.ContainsFunc(r.serviceAccounts, func(o corev1.ServiceAccount) bool {
		return o.Name == sa && o.Namespace == w.namespace
	}) {
		add("ServiceAccount %s/%s is not deployed", w.namespace, sa)
	}
	find := func(kind, namespace, name string) bool {
		return slices.ContainsFunc(r.objects, func(o object) bool {
			return o.kind == kind && o.namespace == namespace && o.name == name
		})
	}
	if !find("ClusterRole", "", names.clusterRole) {
		add("no ClusterRole %s", names.clusterRole)
	}
	if !find("Role", w.namespace, names.leaseRole) {
		add("no Role %s in the Pod's namespace %s", names.leaseRole, w.namespace)
	}
	var cluster, lease int
	for _, b := range r.clusterBindings {
		if b.RoleRef.Name != names.clusterRole {
			continue
		}
		cluster++
		if b.Name != names.clusterBinding {
			add("ClusterRoleBinding %s to %s, want the name %s", b.Name, names.clusterRole, names.clusterBinding)
		}
		if !slices.Contains(b.Subjects, want) {
			add("ClusterRoleBinding %s binds %+v, not the Pod's ServiceAccount %s/%s", b.Name, b.Subjects, w.namespace, sa)
		}
	}
	for _, b := range r.roleBindings {
		if b.RoleRef.Name != names.leaseRole {
			continue
		}
		lease++
		if b.Name != names.leaseBinding {
			add("RoleBinding %s to %s, want the name %s", b.Name, names.leaseRole, names.leaseBinding)
		}
		if b.Namespace != w.namespace {
			add("RoleBinding %s is in namespace %s; the Lease is in the Pod's namespace %s", b.Name, b.Namespace, w.namespace)
		}
		if !slices.Contains(b.Subjects, want) {
			add("RoleBinding %s binds %+v, not the Pod's ServiceAccount %s/%s", b.Name, b.Subjects, w.namespace, sa)
		}
	}
	if cluster != 1 || lease != 1 {
		add("%d ClusterRoleBindings to %s and %d RoleBindings to %s, want one each", cluster, names.clusterRole, lease, names.leaseRole)
	}
	if !slices.ContainsFunc(r.namespaces, func(n corev1.Namespace) bool { return n.Name == w.namespace }) {
		add("the Namespace objects %v do not include the Pod's namespace %s", namespaceNames(r.namespaces), w.namespace)
	}

	// The metrics Service selects this Pod and reaches the metrics port.
	si := slices.IndexFunc(r.services, func(s corev1.Service) bool { return s.Name == names.service && s.Namespace == w.namespace })
	if si < 0 {
		add("no Service %s in namespace %s", names.service, w.namespace)
		return errs
	}
	s := r.services[si]
	if len(s.Spec.Selector) == 0 {
		add("Service %s selects every Pod of its namespace", s.Name)
	}
	for k, v := range s.Spec.Selector {
		if w.pod.Labels[k] != v {
			add("Service %s selects %s=%s, which the Pod does not carry", s.Name, k, v)
		}
	}
	i := slices.IndexFunc(w.pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == attacherContainer })
	c := w.pod.Spec.Containers[i]
	if len(s.Spec.Ports) != 1 {
		add("Service %s has %d ports, want 1", s.Name, len(s.Spec.Ports))
	} else if got, want := resolvePort(c, s.Spec.Ports[0].TargetPort), portOf(flagValue(effectiveArgs(c), "http-endpoint")); got != want {
		add("Service %s targets port %d, the metrics are on %d", s.Name, got, want)
	}
	return errs
}

// effectiveArgs are the flags the attacher parses: its command after the
// program (the Component puts flags there) and then its args, expanded.
func effectiveArgs(c corev1.Container) []string {
	all := expandArgs(c)
	if len(c.Command) > 0 {
		return all[1:]
	}
	return all
}

// expandArgs returns the container's command and args with $(VAR)
// references to its literal env values expanded, as the kubelet does.
func expandArgs(c corev1.Container) []string {
	var out []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				a = strings.ReplaceAll(a, "$("+e.Name+")", e.Value)
			}
		}
		out = append(out, a)
	}
	return out
}

// flagValue is the value of the last --name=value or --name value in args:
// the flag package keeps the last of repeated flags.
func flagValue(args []string, name string) string {
	value := ""
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			value = v
		} else if a == name && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			value = args[i+1]
		}
	}
	return value
}

// driverServing finds the container that mounts the socket volume and names
// the socket, at its own mount path, in its command, args or env.
func driverServing(pod corev1.PodSpec, attacher corev1.Container, volume, socket string) *corev1.Container {
	var rel string
	for _, m := range attacher.VolumeMounts {
		if m.Name == volume {
			rel = strings.TrimPrefix(socket, strings.TrimSuffix(m.MountPath, "/"))
		}
	}
	for i := range pod.Containers {
		d := &pod.Containers[i]
		if d.Name == attacherContainer {
			continue
		}
		for _, m := range d.VolumeMounts {
			if m.Name != volume {
				continue
			}
			want := strings.TrimSuffix(m.MountPath, "/") + rel
			values := expandArgs(*d)
			for _, e := range d.Env {
				values = append(values, e.Value)
			}
			for _, v := range values {
				if strings.Contains(v, want) {
					return d
				}
			}
		}
	}
	return nil
}

func countVolumes(vs []corev1.Volume, name string) int {
	n := 0
	for _, v := range vs {
		if v.Name == name {
			n++
		}
	}
	return n
}

func mountNames(c corev1.Container) []string {
	var out []string
	for _, m := range c.VolumeMounts {
		out = append(out, m.Name)
	}
	return out
}

func namespaceNames(ns []corev1.Namespace) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// portOf is the port of a host:port listen address, -1 if there is none.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

// resolvePort turns a port number or container port name into a number,
// -1 when the name is not a port of c.
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}
