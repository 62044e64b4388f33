package controllers_test

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// writes counts the API writes one attacher sends, by kind and subresource.
// The writes go to the real API server; the counter only watches them pass.
var writes = &writeCounter{}

type writeCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *writeCounter) add(obj client.Object, verb, subresource string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	kind := fmt.Sprintf("%T", obj)
	w.counts[verb+" "+kind+" "+subresource]++
}

func (w *writeCounter) reset() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts
	w.counts = nil
	if c == nil {
		c = map[string]int{}
	}
	return c
}

func (w *writeCounter) wrap(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.add(obj, "create", "")
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.add(obj, "update", "")
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			w.add(obj, "patch", "")
			return c.Patch(ctx, obj, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.add(obj, "delete", "")
			return c.Delete(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			w.add(obj, "patch", sub)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			w.add(obj, "update", sub)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
}

const (
	vaType = "*v1.VolumeAttachment"
	pvType = "*v1.PersistentVolume"
)

// The fewest API writes: 3 per fresh attach, 2 when the PV already carries
// our finalizer, 1 per detach, 1 per PV release, and no repeated CSI call.
var _ = Describe("API writes and CSI calls per operation", Ordered, func() {
	const n = 20
	var (
		ctx    = context.Background()
		objs   = &tracker{}
		driver *fake.Driver
		node   = uniqueName("counted-node")
		pvs    []*corev1.PersistentVolume
		vas    []*storagev1.VolumeAttachment
	)

	BeforeAll(func() {
		driver = attachers[countedDriver].driver
		objs.create(ctx, newCSINode(node, countedDriver, "id-"+node))
		for i := 0; i < 2*n; i++ {
			pv := newPV(uniqueName("counted-pv"), countedDriver, uniqueName("counted-vol"))
			if i >= n {
				// The second half already carries our finalizer, as after a
				// previous attachment of the same PV.
				pv.Finalizers = []string{volume.FinalizerName(countedDriver)}
			}
			objs.create(ctx, pv)
			pvs = append(pvs, pv)
		}
		writes.reset()
	})
	AfterAll(func() { objs.cleanup(ctx) })

	attachAll := func(from, to int) {
		GinkgoHelper()
		for _, pv := range pvs[from:to] {
			va := newVA(uniqueName("counted-va"), countedDriver, node, pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va)
		}
		for _, va := range vas[from:to] {
			expectAttached(ctx, va.Name)
		}
	}

	It("attaches with 3 writes per fresh attachment and one ControllerPublishVolume", func() {
		attachAll(0, n)
		Expect(writes.reset()).To(Equal(map[string]int{
			"patch " + pvType + " ":       n,
			"patch " + vaType + " ":       n,
			"patch " + vaType + " status": n,
		}))
		for _, pv := range pvs[:n] {
			Expect(driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(Equal(1), pv.Name)
		}
	})

	It("attaches with 2 writes when the PV already carries our finalizer", func() {
		attachAll(n, 2*n)
		Expect(writes.reset()).To(Equal(map[string]int{
			"patch " + vaType + " ":       n,
			"patch " + vaType + " status": n,
		}))
	})

	It("detaches with 1 write and one ControllerUnpublishVolume", func() {
		for _, va := range vas {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		for _, va := range vas {
			expectGone(ctx, va)
		}
		Expect(writes.reset()).To(Equal(map[string]int{"patch " + vaType + " ": 2 * n}))
		for _, pv := range pvs {
			Expect(driver.CallCount(fake.MethodUnpublish, pv.Spec.CSI.VolumeHandle)).To(Equal(1), pv.Name)
			Expect(driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(Equal(1), pv.Name)
		}
	})

	It("releases each PV with 1 write", func() {
		for _, pv := range pvs {
			Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		}
		for _, pv := range pvs {
			expectGone(ctx, pv)
		}
		Expect(writes.reset()).To(Equal(map[string]int{"patch " + pvType + " ": 2 * n}))
	})
})
