package config

import (
	"fmt"
	"maps"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/rights"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// The fixtures of config/testdata: overlays that use the sidecar
// Component as a vendor would, around manifests shaped like real drivers'.
const (
	hostpathDir   = "config/testdata/hostpath"
	severalDir    = "config/testdata/several"
	noAttacherDir = "config/testdata/no-attacher"
	referenceDir  = "config/testdata/reference"
	// markLabel marks the workload the Component changes.
	markLabel = "csi-attacher/sidecar"
	// podLabel is the Pod label the Component adds for its Service.
	podLabel = "csi-attacher/driver"
	// fixtureImage is what the fixtures' images entry maps csi-attacher to.
	fixtureImage = "registry.example.com/csi-attacher:v1.0.0"
)

// componentCommand is all the Component adds to the attacher's flags: the
// Lease (it ships the Lease Role) and the one server its probes and its
// metrics Service use.
var componentCommand = []string{"/csi-attacher", "--leader-election", "--http-endpoint=:21030"}

// source reads the manifests an overlay builds on, as they are before
// kustomize, with the overlay's namespace set as kustomize sets it.
func source(t *testing.T, file, namespace string) rendered {
	t.Helper()
	data, err := os.ReadFile(path.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	r := parse(t, file, data)
	for i := range r.workloads {
		r.workloads[i].namespace = namespace
	}
	for i, o := range r.objects {
		if o.kind != "Namespace" {
			r.objects[i].namespace = namespace
			r.objects[i].doc["metadata"].(map[string]any)["namespace"] = namespace
		}
	}
	return r
}

func findWorkload(t *testing.T, r rendered, name string) workload {
	t.Helper()
	i := slices.IndexFunc(r.workloads, func(w workload) bool { return w.name == name })
	if i < 0 {
		t.Fatalf("%s: no workload %s in %v", r.dir, name, r.workloads)
	}
	return r.workloads[i]
}

func findObject(r rendered, kind, name string) (object, bool) {
	i := slices.IndexFunc(r.objects, func(o object) bool { return o.kind == kind && o.name == name })
	if i < 0 {
		return object{}, false
	}
	return r.objects[i], true
}

func containerNames(pod corev1.PodSpec) []string {
	var out []string
	for _, c := range pod.Containers {
		out = append(out, c.Name)
	}
	return out
}

// TestComponentKeepsTheVendorsContainer: the Component applied to a driver
// shaped like csi-driver-host-path's, whose reference attacher container
// has the vendor's own args, resources and privileged: true, keeps all of
// that and the container's place, and adds exactly the image, the flags,
// the port and the probes; nothing else of the StatefulSet changes but one
// Pod label. The result is a working sidecar (checkSidecar).
func TestComponentKeepsTheVendorsContainer(t *testing.T) {
	const ns = "hostpath"
	r := render(t, kustomizeBinary(t), hostpathDir)
	vendor := findWorkload(t, source(t, hostpathDir+"/driver.yaml", ns), "csi-hostpathplugin")
	got := findWorkload(t, r, "csi-hostpathplugin")

	if names := containerNames(got.pod.Spec); !slices.Equal(names, containerNames(vendor.pod.Spec)) {
		t.Errorf("containers %v, want the vendor's order %v", names, containerNames(vendor.pod.Spec))
	}
	i := slices.IndexFunc(got.pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == attacherContainer })
	vi := slices.IndexFunc(vendor.pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == attacherContainer })
	if i < 0 || vi < 0 {
		t.Fatalf("no %s container: rendered %d, vendor's %d", attacherContainer, i, vi)
	}
	c, vc := got.pod.Spec.Containers[i], vendor.pod.Spec.Containers[vi]

	// What the vendor set, one by one for a clear message.
	if !slices.Equal(c.Args, vc.Args) {
		t.Errorf("args %q, want the vendor's %q", c.Args, vc.Args)
	}
	if !reflect.DeepEqual(c.Resources, vc.Resources) {
		t.Errorf("resources %+v, want the vendor's %+v", c.Resources, vc.Resources)
	}
	if !reflect.DeepEqual(c.SecurityContext, vc.SecurityContext) {
		t.Errorf("securityContext %+v, want the vendor's %+v", c.SecurityContext, vc.SecurityContext)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("privileged: true is gone: %+v", c.SecurityContext)
	}

	// What the Component adds, and nothing more: the vendor's container with
	// these fields set must be exactly the rendered one.
	want := *vc.DeepCopy()
	want.Image = fixtureImage
	want.Command = componentCommand
	want.Ports = append(want.Ports, corev1.ContainerPort{Name: "attacher-http", ContainerPort: 21030, Protocol: corev1.ProtocolTCP})
	want.LivenessProbe = &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/leader-election", Port: intstr.FromString("attacher-http")}},
		InitialDelaySeconds: 10, TimeoutSeconds: 10, PeriodSeconds: 20, FailureThreshold: 1,
	}
	want.ReadinessProbe = &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("attacher-http")}},
		InitialDelaySeconds: 5, PeriodSeconds: 10,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("the attacher container is not the vendor's plus the Component's fields:\n got %+v\nwant %+v", c, want)
	}

	// The rest of the Pod is the vendor's, but for the Service's label.
	pod := *got.pod.DeepCopy()
	pod.Spec.Containers[i] = vc
	if v := pod.Labels[podLabel]; v != volume.SanitizeDriverName("hostpath.csi.k8s.io") {
		t.Errorf("Pod label %s=%q, want the driver's name as in its Lease", podLabel, v)
	}
	delete(pod.Labels, podLabel)
	if !reflect.DeepEqual(pod, vendor.pod) {
		t.Errorf("the Pod template changed beyond the attacher container and the label %s:\n got %+v\nwant %+v", podLabel, pod, vendor.pod)
	}
	// And the StatefulSet around it.
	gotObj, _ := findObject(r, "StatefulSet", "csi-hostpathplugin")
	vendorObj, _ := findObject(source(t, hostpathDir+"/driver.yaml", ns), "StatefulSet", "csi-hostpathplugin")
	if a, b := withoutTemplate(gotObj.doc), withoutTemplate(vendorObj.doc); !reflect.DeepEqual(a, b) {
		t.Errorf("the StatefulSet changed outside its Pod template:\n got %v\nwant %v", a, b)
	}

	for _, err := range checkSidecar(r, got) {
		t.Errorf("%s: %s: %v", hostpathDir, got, err)
	}
}

// withoutTemplate is a copy of a workload's object without its Pod template.
func withoutTemplate(doc map[string]any) map[string]any {
	out := maps.Clone(doc)
	spec := maps.Clone(out["spec"].(map[string]any))
	delete(spec, "template")
	out["spec"] = spec
	return out
}

// TestComponentPatchesOnlyTheMarkedWorkload: in a kustomization with several
// workloads, among them another driver that keeps the reference attacher,
// only the workload labelled csi-attacher/sidecar changes.
func TestComponentPatchesOnlyTheMarkedWorkload(t *testing.T) {
	r := render(t, kustomizeBinary(t), severalDir)
	src := source(t, severalDir+"/workloads.yaml", "hostpath")
	var marked int
	for _, o := range src.objects {
		if o.kind != "StatefulSet" && o.kind != "Deployment" {
			continue
		}
		got, ok := findObject(r, o.kind, o.name)
		if !ok {
			t.Errorf("%s %s is gone", o.kind, o.name)
			continue
		}
		labels, _ := o.doc["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels[markLabel] == "true" {
			marked++
			if reflect.DeepEqual(got.doc, o.doc) {
				t.Errorf("%s %s is marked but unchanged", o.kind, o.name)
			}
			continue
		}
		if !reflect.DeepEqual(got.doc, o.doc) {
			t.Errorf("%s %s is not marked but changed:\n got %v\nwant %v", o.kind, o.name, got.doc, o.doc)
		}
	}
	if marked != 1 {
		t.Fatalf("%d marked workloads in %s, want 1", marked, severalDir)
	}
	w := findWorkload(t, r, "csi-other")
	for _, err := range checkSidecar(r, w) {
		t.Errorf("%s: %s: %v", severalDir, w, err)
	}
}

// TestComponentNeedsTheAttacherContainer: a marked workload without a
// csi-attacher container fails the build, naming the container, instead
// of getting half a container.
func TestComponentNeedsTheAttacherContainer(t *testing.T) {
	_, err := build(kustomizeBinary(t), noAttacherDir)
	if err == nil || !strings.Contains(err.Error(), "containers.[name=csi-attacher]") {
		t.Fatalf("kustomize build %s: %v, want an error naming the csi-attacher container", noAttacherDir, err)
	}
}

// TestTwoDriversInOneCluster: two drivers' overlays and the reference's
// unrenamed RBAC, all in one namespace of one cluster, share no object
// (kind, namespace and name), so that applying or deleting one never
// changes another's; and each metrics Service selects its own driver's
// Pods only.
func TestTwoDriversInOneCluster(t *testing.T) {
	kustomize := kustomizeBinary(t)
	owner := map[string]string{}
	var all []rendered
	for _, dir := range []string{hostpathDir, severalDir, referenceDir} {
		r := render(t, kustomize, dir)
		all = append(all, r)
		for _, o := range r.objects {
			if o.kind == "Namespace" {
				continue // one Namespace both drivers live in is no collision
			}
			if other, ok := owner[o.id()]; ok {
				t.Errorf("%s is in both %s and %s", o.id(), other, dir)
			}
			owner[o.id()] = dir
		}
	}
	for _, r := range all {
		for _, s := range r.services {
			selector := labels.SelectorFromSet(s.Spec.Selector)
			for _, other := range all {
				for _, w := range other.workloads {
					if w.namespace == s.Namespace && selector.Matches(labels.Set(w.pod.Labels)) && other.dir != r.dir {
						t.Errorf("Service %s/%s of %s selects the Pods of %s of %s", s.Namespace, s.Name, r.dir, w, other.dir)
					}
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	var ids []string
	for id := range owner {
		ids = append(ids, fmt.Sprintf("%s (%s)", id, path.Base(owner[id])))
	}
	slices.Sort(ids)
	t.Logf("%d objects, none shared:\n%s", len(ids), strings.Join(ids, "\n"))
}

// grantedBy parses doctor's Right.GrantedByComponent.
var grantedBy = regexp.MustCompile(`^(\w+) (\S+), bound by (\w+) (\S+?)(?: in namespace (\S+))? \(config/components/sidecar\)$`)

// TestDoctorNamesTheComponentsObjects: the roles and bindings doctor (and
// the attacher's check at start) names for a missing right are the ones
// the Component deployed for that driver, binding that role.
func TestDoctorNamesTheComponentsObjects(t *testing.T) {
	kustomize := kustomizeBinary(t)
	for dir, driver := range map[string]string{hostpathDir: "hostpath.csi.k8s.io", severalDir: "other.csi.example.com", "config/samples": "fake.csi.example.com"} {
		r := render(t, kustomize, dir)
		ns := r.workloads[0].namespace
		seen := map[string]bool{}
		for _, right := range mustRights(rights.RequiredRights(true, ns, leader.LeaseName(driver))) {
			m := grantedBy.FindStringSubmatch(right.GrantedByComponent)
			if m == nil {
				t.Errorf("%s: %s: doctor names %q", dir, right, right.GrantedByComponent)
				continue
			}
			if seen[m[0]] {
				continue
			}
			seen[m[0]] = true
			roleKind, roleName, bindingKind, bindingName, bindingNS := m[1], m[2], m[3], m[4], m[5]
			if roleKind == "Role" && bindingNS != ns {
				t.Errorf("%s: doctor names namespace %q for %s, the Lease is in %s", dir, bindingNS, roleName, ns)
			}
			if _, ok := findObject(r, roleKind, roleName); !ok {
				t.Errorf("%s: doctor names %s %s, which the Component did not deploy", dir, roleKind, roleName)
			}
			b, ok := findObject(r, bindingKind, bindingName)
			if !ok {
				t.Errorf("%s: doctor names %s %s, which the Component did not deploy", dir, bindingKind, bindingName)
				continue
			}
			if ref := b.doc["roleRef"].(map[string]any); ref["name"] != roleName || ref["kind"] != roleKind {
				t.Errorf("%s: %s %s binds %v, not the %s %s doctor names", dir, bindingKind, bindingName, ref, roleKind, roleName)
			}
		}
		if len(seen) != 2 {
			t.Errorf("%s: doctor names %d roles of the Component, want the ClusterRole and the Lease Role", dir, len(seen))
		}
	}
}
