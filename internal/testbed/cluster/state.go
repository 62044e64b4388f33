package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	csitrans "k8s.io/csi-translation-lib"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// PollInterval is how often the suite looks at the cluster while it waits.
const PollInterval = 100 * time.Millisecond

func (c *Cluster) poll(ctx context.Context, done func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, PollInterval, startTimeout, true, func(context.Context) (bool, error) {
		return done()
	})
}

// DriverState reads the driver's state file: what the backend holds.
func (c *Cluster) DriverState() (fake.State, error) {
	var s fake.State
	data, err := os.ReadFile(c.StateFile())
	if errors.Is(err, fs.ErrNotExist) {
		return fake.State{Published: map[string][]string{}}, nil
	}
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(data, &s)
	return s, err
}

// Calls reads the driver's call log, the calls of method only when method
// is not empty.
func (c *Cluster) Calls(method string) ([]fake.CallRecord, error) {
	f, err := os.Open(c.CallsFile())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []fake.CallRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var call fake.CallRecord
		if err := json.Unmarshal(sc.Bytes(), &call); err != nil {
			// The driver may be writing the last line right now.
			continue
		}
		if method == "" || call.Method == method {
			out = append(out, call)
		}
	}
	return out, sc.Err()
}

// Snapshot is what the suite checks at a moment: the VolumeAttachments of
// the driver, the volumes each Node reports attached, and what the driver
// holds.
type Snapshot struct {
	// VAs are the driver's VolumeAttachments by name.
	VAs map[string]storagev1.VolumeAttachment
	// NodeAttached maps a node to the unique volume names in its
	// status.volumesAttached.
	NodeAttached map[string][]string
	// Published is the driver's state: volume ID -> node IDs.
	Published map[string][]string
	Driver    fake.State
	// Finalized lists every object still carrying our finalizer.
	Finalized []string
	// Expected maps each VolumeAttachment to the (driver volume ID, node
	// ID) it stands for, and UniqueName to the name the Node lists it by.
	Expected   map[string][2]string
	UniqueName map[string]string
}

// Take reads a Snapshot.
func (c *Cluster) Take(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{
		VAs: map[string]storagev1.VolumeAttachment{}, NodeAttached: map[string][]string{},
		Expected: map[string][2]string{}, UniqueName: map[string]string{},
	}
	finalizer := volume.FinalizerName(c.Driver)
	var vas storagev1.VolumeAttachmentList
	if err := c.Client.List(ctx, &vas); err != nil {
		return nil, err
	}
	pvs := map[string]corev1.PersistentVolume{}
	var pvList corev1.PersistentVolumeList
	if err := c.Client.List(ctx, &pvList); err != nil {
		return nil, err
	}
	for _, pv := range pvList.Items {
		pvs[pv.Name] = pv
		if slices.Contains(pv.Finalizers, finalizer) {
			s.Finalized = append(s.Finalized, "PersistentVolume/"+pv.Name)
		}
	}
	for _, va := range vas.Items {
		if va.Spec.Attacher != c.Driver {
			continue
		}
		s.VAs[va.Name] = va
		if slices.Contains(va.Finalizers, finalizer) {
			s.Finalized = append(s.Finalized, "VolumeAttachment/"+va.Name)
		}
		if pvName := va.Spec.Source.PersistentVolumeName; pvName != nil {
			if pv, ok := pvs[*pvName]; ok {
				handle, err := c.driverHandle(&pv)
				if err != nil {
					return nil, err
				}
				nodeID := NodeID(va.Spec.NodeName)
				id := handle
				if c.Driver == DefaultDriver {
					id = fake.GCEPDVolumeID(handle, nodeID)
				}
				s.Expected[va.Name] = [2]string{id, nodeID}
				s.UniqueName[va.Name] = fmt.Sprintf("kubernetes.io/csi/%s^%s", c.Driver, handle)
			}
		}
	}
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return nil, err
	}
	for _, n := range nodes.Items {
		for _, v := range n.Status.VolumesAttached {
			s.NodeAttached[n.Name] = append(s.NodeAttached[n.Name], string(v.Name))
		}
	}
	st, err := c.DriverState()
	if err != nil {
		return nil, err
	}
	s.Driver, s.Published = st, st.Published
	sort.Strings(s.Finalized)
	return s, nil
}

// driverHandle is the volume handle the attacher sends for pv: its CSI
// handle, or the handle csi-translation-lib makes of an in-tree volume.
func (c *Cluster) driverHandle(pv *corev1.PersistentVolume) (string, error) {
	if pv.Spec.CSI != nil {
		return pv.Spec.CSI.VolumeHandle, nil
	}
	t := csitrans.New()
	if !t.IsPVMigratable(pv) {
		return "", fmt.Errorf("PV %s is neither CSI nor migratable", pv.Name)
	}
	out, err := t.TranslateInTreePVToCSI(klog.Background(), pv)
	if err != nil {
		return "", err
	}
	return out.Spec.CSI.VolumeHandle, nil
}

// Attached reports whether the VolumeAttachment is attached both as the
// user sees it (status.attached, and the Node listing the volume in
// status.volumesAttached, which is what the kubelet waits for) and in the
// backend (the driver has it published to that node).
func (s *Snapshot) Attached(vaName string) error {
	va, ok := s.VAs[vaName]
	switch {
	case !ok:
		return fmt.Errorf("VolumeAttachment %s does not exist", vaName)
	case !va.Status.Attached:
		return fmt.Errorf("VolumeAttachment %s is not attached (attachError %v)", vaName, va.Status.AttachError)
	}
	if !slices.Contains(s.NodeAttached[va.Spec.NodeName], s.UniqueName[vaName]) {
		return fmt.Errorf("node %s does not list %s in status.volumesAttached (it lists %v)", va.Spec.NodeName, s.UniqueName[vaName], s.NodeAttached[va.Spec.NodeName])
	}
	want := s.Expected[vaName]
	if !slices.Contains(s.Published[want[0]], want[1]) {
		return fmt.Errorf("the driver has not published %s to %s (it has it on %v)", want[0], want[1], s.Published[want[0]])
	}
	return nil
}

// Leaks returns the driver's publications that no attached, live
// VolumeAttachment accounts for: volumes left attached by mistake.
func (s *Snapshot) Leaks() []string {
	accounted := map[[2]string]bool{}
	for name, va := range s.VAs {
		if va.Status.Attached || va.DeletionTimestamp != nil || slices.ContainsFunc(va.Finalizers, func(f string) bool { return strings.HasPrefix(f, "external-attacher/") }) {
			accounted[s.Expected[name]] = true
		}
	}
	var out []string
	for _, vol := range slices.Sorted(maps.Keys(s.Published)) {
		for _, node := range s.Published[vol] {
			if !accounted[[2]string{vol, node}] {
				out = append(out, vol+" on "+node)
			}
		}
	}
	return out
}

// Converged reports whether the cluster is at rest and consistent: every
// VolumeAttachment attached (see Attached), none being deleted, and the
// driver publishing exactly the attached volumes.
func (s *Snapshot) Converged() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.VAs)) {
		if s.VAs[name].DeletionTimestamp != nil {
			errs = append(errs, fmt.Errorf("VolumeAttachment %s is being deleted", name))
			continue
		}
		if err := s.Attached(name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, leak := range s.Leaks() {
		errs = append(errs, fmt.Errorf("the driver has %s with no VolumeAttachment", leak))
	}
	return errors.Join(errs...)
}

// VAsOn returns the names of the VolumeAttachments for a node.
func (s *Snapshot) VAsOn(node string) []string {
	var out []string
	for name, va := range s.VAs {
		if va.Spec.NodeName == node {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// VAFor returns the VolumeAttachment of a PV, if there is exactly one.
func (s *Snapshot) VAFor(pv string) (storagev1.VolumeAttachment, bool) {
	var found []storagev1.VolumeAttachment
	for _, va := range s.VAs {
		if p := va.Spec.Source.PersistentVolumeName; p != nil && *p == pv {
			found = append(found, va)
		}
	}
	if len(found) != 1 {
		return storagev1.VolumeAttachment{}, false
	}
	return found[0], true
}

// ListPods returns the Pods of ns matching labels.
func (c *Cluster) ListPods(ctx context.Context, ns string, labels map[string]string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := c.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels))
	return pods.Items, err
}
