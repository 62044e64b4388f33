package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

var nameSeq atomic.Int64

// uniqueName gives cluster-scoped objects of different tests distinct names.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, GinkgoParallelProcess(), nameSeq.Add(1))
}

// tracker creates objects for one test and removes them afterwards,
// stripping finalizers first: envtest runs no garbage collector.
type tracker struct{ objs []client.Object }

func (t *tracker) create(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	t.objs = append(t.objs, obj)
}

// specObjects gives each spec of the enclosing container a fresh tracker
// whose objects are deleted after the spec. Its cleanup is registered
// before anything the spec itself defers, so it runs last: after the
// attachers a spec started have stopped.
func specObjects() *tracker {
	t := &tracker{}
	BeforeEach(func() {
		*t = tracker{}
		DeferCleanup(t.cleanup, context.Background())
	})
	return t
}

func (t *tracker) cleanup(ctx context.Context) {
	for i := len(t.objs) - 1; i >= 0; i-- {
		obj := t.objs[i]
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			continue
		}
		if len(obj.GetFinalizers()) > 0 {
			obj.SetFinalizers(nil)
			_ = k8sClient.Update(ctx, obj)
		}
		_ = k8sClient.Delete(ctx, obj)
	}
}

func newCSINode(node, driver, nodeID string) *storagev1.CSINode {
	return &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name: driver, NodeID: nodeID,
		}}},
	}
}

func newPV(name, driver, handle string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver:           driver,
				VolumeHandle:     handle,
				VolumeAttributes: map[string]string{"pool": "fast"},
			}},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		},
	}
}

func newVA(name, driver, node, pv string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: driver,
			NodeName: node,
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pv)},
		},
	}
}

func getVA(ctx context.Context, name string) (*storagev1.VolumeAttachment, error) {
	va := &storagev1.VolumeAttachment{}
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, va)
	return va, err
}

func getPV(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	pv := &corev1.PersistentVolume{}
	err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, pv)
	return pv, err
}

// expectAttached waits until the VolumeAttachment is attached without error
// and returns it.
func expectAttached(ctx context.Context, name string) *storagev1.VolumeAttachment {
	GinkgoHelper()
	var va *storagev1.VolumeAttachment
	Eventually(func(g Gomega) {
		var err error
		va, err = getVA(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(va.Status.Attached).To(BeTrue())
		g.Expect(va.Status.AttachError).To(BeNil())
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	return va
}

// expectAttachError waits until status.attachError contains substring and
// returns the VolumeAttachment.
func expectAttachError(ctx context.Context, name, substring string) *storagev1.VolumeAttachment {
	GinkgoHelper()
	var va *storagev1.VolumeAttachment
	Eventually(func(g Gomega) {
		var err error
		va, err = getVA(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(va.Status.AttachError).NotTo(BeNil())
		g.Expect(va.Status.AttachError.Message).To(ContainSubstring(substring))
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	return va
}

func expectGone(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(BeTrue(), "%T %s should be gone", obj, obj.GetName())
}

// startOwnAttacher runs an attacher for one test and stops it afterwards.
func startOwnAttacher(name string, opts attacherOptions) *testAttacher {
	GinkgoHelper()
	a := startAttacher(fake.DefaultConfig(name), opts)
	DeferCleanup(a.stop)
	return a
}

// maxOverlapByNode is the highest number of Publish/Unpublish calls in
// flight at once for each node, from the driver's record.
func maxOverlapByNode(calls []fake.Call) map[string]int {
	type edge struct {
		at    time.Time
		delta int
	}
	edges := map[string][]edge{}
	for _, c := range calls {
		if c.Method != fake.MethodPublish && c.Method != fake.MethodUnpublish {
			continue
		}
		edges[c.NodeID] = append(edges[c.NodeID], edge{c.Start, 1}, edge{c.End, -1})
	}
	peaks := map[string]int{}
	for node, es := range edges {
		sort.Slice(es, func(i, j int) bool {
			if es[i].at.Equal(es[j].at) {
				return es[i].delta < es[j].delta
			}
			return es[i].at.Before(es[j].at)
		})
		cur := 0
		for _, e := range es {
			cur += e.delta
			peaks[node] = max(peaks[node], cur)
		}
	}
	return peaks
}

// maxOverlap is the highest number of the calls in flight at once.
func maxOverlap(calls []fake.Call) int {
	for i := range calls {
		calls[i].NodeID = "all"
	}
	return maxOverlapByNode(calls)["all"]
}

// callsFor returns the driver's recorded calls of one method for one volume.
func callsFor(d *fake.Driver, method, volumeID string) []fake.Call {
	var out []fake.Call
	for _, c := range d.Calls() {
		if c.Method == method && c.VolumeID == volumeID {
			out = append(out, c)
		}
	}
	return out
}

// expectWarningEvent waits for a Warning Event about a VolumeAttachment
// whose reason matches and whose note contains substring.
func expectWarningEvent(ctx context.Context, vaName, reason, substring string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		list := &eventsv1.EventList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace("default"))).To(Succeed())
		found := false
		for _, e := range list.Items {
			if e.Regarding.Name == vaName && e.Type == corev1.EventTypeWarning && e.Reason == reason {
				g.Expect(e.Note).To(ContainSubstring(substring))
				found = true
			}
		}
		g.Expect(found).To(BeTrue(), "no %s Event for VolumeAttachment %s", reason, vaName)
	}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
}

// syncBuffer is a bytes.Buffer that many goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bufferLogger logs everything, at every verbosity (the CSI client logs
// gRPC bodies at V(6)), into a buffer the test can search.
func bufferLogger() (*logr.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	l := zap.New(zap.WriteTo(buf), zap.Level(zapcore.Level(-10)))
	return &l, buf
}

// cleanupVA deletes an attached VolumeAttachment and waits until the
// attacher has detached it.
func cleanupVA(ctx context.Context, name string) {
	GinkgoHelper()
	va := &storagev1.VolumeAttachment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, va)).To(Succeed())
	Expect(k8sClient.Delete(ctx, va)).To(Succeed())
	expectGone(ctx, va)
}

func counterWith(families map[string]*dto.MetricFamily, name string, kv ...string) float64 {
	GinkgoHelper()
	Expect(families).To(HaveKey(name))
	for _, m := range families[name].GetMetric() {
		l := labelsOf(m)
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			match = match && l[kv[i]] == kv[i+1]
		}
		if match {
			return m.GetCounter().GetValue()
		}
	}
	Fail("no series of " + name + " with the given labels")
	return 0
}

// sharedDriver starts a fake driver that outlives the attachers using it, as
// the storage backend outlives every attacher replica.
func sharedDriver(name string) *fake.Driver {
	GinkgoHelper()
	dir, err := os.MkdirTemp("", "csi-shared")
	Expect(err).NotTo(HaveOccurred())
	driver := fake.New(fake.DefaultConfig(name))
	Expect(driver.Start(filepath.Join(dir, "csi.sock"))).To(Succeed())
	DeferCleanup(func() { driver.Stop(); _ = os.RemoveAll(dir) })
	return driver
}

// unpublishedFrom lists the node IDs of the ControllerUnpublishVolume calls
// the driver received for handle, in order.
func unpublishedFrom(d *fake.Driver, handle string) []string {
	var ids []string
	for _, c := range d.Calls() {
		if c.Method == fake.MethodUnpublish && c.VolumeID == handle {
			ids = append(ids, c.NodeID)
		}
	}
	return ids
}

// newGCEPDPV is an in-tree GCE PD PersistentVolume as kube-controller-manager
// leaves it once CSI migration routes it to gcePD.
func newGCEPDPV(name, disk, zone string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{corev1.LabelTopologyZone: zone},
			Annotations: map[string]string{volume.MigratedToAnnotation: gcePD},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: disk, FSType: "ext4"},
			},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		},
	}
}
