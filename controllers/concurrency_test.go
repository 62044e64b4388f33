package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// otherController is a well-behaved controller of someone else: it adds and
// removes its own finalizer on PVs and VAs with optimistic-lock merge
// patches, retrying on conflicts, and remembers what it last set.
type otherController struct {
	mu      sync.Mutex
	want    map[string]bool // "kind/name" -> its finalizer should be there
	writes  int
	retries int
}

func otherFinalizer(name string) string { return "example.com/other-" + name }

// toggle flips the controller's finalizer on obj (a typed, empty object
// naming the target). It returns without change when the object is gone or
// being deleted (no finalizer may be added then).
func (o *otherController) toggle(ctx context.Context, obj client.Object) error {
	id := fmt.Sprintf("%T/%s", obj, obj.GetName())
	fin := otherFinalizer(obj.GetName())
	var set bool
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		base := obj.DeepCopyObject().(client.Object)
		// Think a little, as a controller working from a cache does: the
		// attacher may write in between, and the lock catches it.
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
		has := slices.Contains(obj.GetFinalizers(), fin)
		if !has && !obj.GetDeletionTimestamp().IsZero() {
			set = false
			return errSkip
		}
		if has {
			obj.SetFinalizers(slices.DeleteFunc(slices.Clone(obj.GetFinalizers()), func(f string) bool { return f == fin }))
		} else {
			obj.SetFinalizers(append(slices.Clone(obj.GetFinalizers()), fin))
		}
		set = !has
		err := k8sClient.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			o.mu.Lock()
			o.retries++
			o.mu.Unlock()
		}
		return err
	})
	switch {
	case errors.Is(err, errSkip), apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.want[id] = set
	o.writes++
	return nil
}

var errSkip = errors.New("skip")

func (o *otherController) wants(obj client.Object) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.want[fmt.Sprintf("%T/%s", obj, obj.GetName())]
}

// countOf is how many times s occurs in list.
func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

var _ = Describe("Concurrent writers", func() {
	It("keeps another controller's finalizers on the same PVs and VAs while attaching and detaching 30 volumes", func() {
		const (
			driverName = "concurrent.csi.test"
			n          = 30
		)
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{workers: 10})
		DeferCleanup(objs.cleanup, ctx)
		a.driver.SetLatency(fake.MethodPublish, "", 50*time.Millisecond)
		a.driver.SetLatency(fake.MethodUnpublish, "", 50*time.Millisecond)
		finalizer := volume.FinalizerName(driverName)
		node := uniqueName("conc-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		var pvs []*corev1.PersistentVolume
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < n; i++ {
			pv := newPV(uniqueName("conc-pv"), driverName, uniqueName("conc-vol"))
			objs.create(ctx, pv)
			pvs = append(pvs, pv)
			vas = append(vas, newVA(uniqueName("conc-va"), driverName, node, pv.Name))
		}

		other := &otherController{want: map[string]bool{}}
		otherCtx, stopOther := context.WithCancel(ctx)
		DeferCleanup(stopOther)
		otherDone := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(otherDone)
			rng := rand.New(rand.NewPCG(1, 2))
			for otherCtx.Err() == nil {
				i := rng.IntN(n)
				var target client.Object = &corev1.PersistentVolume{}
				target.SetName(pvs[i].Name)
				if rng.IntN(2) == 0 {
					target = &storagev1.VolumeAttachment{}
					target.SetName(vas[i].Name)
				}
				// Each toggle runs to its end: a write cut off by a stop
				// could land without being recorded as the last one set.
				Expect(other.toggle(ctx, target)).To(Succeed())
			}
		}()

		for _, va := range vas {
			objs.create(ctx, va)
		}
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
		// Detach the first half and release its PVs.
		for i := 0; i < n/2; i++ {
			Expect(k8sClient.Delete(ctx, vas[i])).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for i := 0; i < n/2; i++ {
				got, err := getVA(ctx, vas[i].Name)
				if apierrors.IsNotFound(err) {
					continue
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Finalizers).NotTo(ContainElement(finalizer), vas[i].Name)
			}
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		for i := 0; i < n/2; i++ {
			Expect(k8sClient.Delete(ctx, pvs[i])).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for i := 0; i < n/2; i++ {
				got, err := getPV(ctx, pvs[i].Name)
				if apierrors.IsNotFound(err) {
					continue
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Finalizers).NotTo(ContainElement(finalizer), pvs[i].Name)
			}
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		// Let the other controller keep going over the settled state too.
		time.Sleep(time.Second)
		stopOther()
		<-otherDone
		GinkgoWriter.Printf("other controller: %d writes, %d conflicts retried\n", other.writes, other.retries)
		Expect(other.writes).To(BeNumerically(">", 2*n), "the other controller was busy")

		check := func(obj client.Object, live bool) {
			GinkgoHelper()
			wantOther := other.wants(obj)
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			if !live && !wantOther {
				// Nothing holds a deleted object: it must be gone.
				Eventually(func() bool {
					return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
				}).WithTimeout(eventually).Should(BeTrue(), "%T %s is held", obj, obj.GetName())
				return
			}
			Expect(err).NotTo(HaveOccurred(), "%T %s", obj, obj.GetName())
			fins := obj.GetFinalizers()
			for _, f := range fins {
				Expect(countOf(fins, f)).To(Equal(1), "duplicate finalizer %s on %s", f, obj.GetName())
			}
			if wantOther {
				Expect(fins).To(ContainElement(otherFinalizer(obj.GetName())), "lost on %T %s", obj, obj.GetName())
			} else {
				Expect(fins).NotTo(ContainElement(otherFinalizer(obj.GetName())), "resurrected on %T %s", obj, obj.GetName())
			}
			if live {
				Expect(fins).To(ContainElement(finalizer), "%T %s", obj, obj.GetName())
			} else {
				Expect(fins).To(Equal([]string{otherFinalizer(obj.GetName())}), "%T %s", obj, obj.GetName())
			}
		}
		for i := 0; i < n; i++ {
			live := i >= n/2
			va := &storagev1.VolumeAttachment{}
			va.Name = vas[i].Name
			check(va, live)
			pv := &corev1.PersistentVolume{}
			pv.Name = pvs[i].Name
			check(pv, live)
			handle := pvs[i].Spec.CSI.VolumeHandle
			if live {
				Expect(va.Status.Attached).To(BeTrue(), va.Name)
				Expect(a.driver.Published(handle)).To(Equal([]string{"id-" + node}))
			} else {
				Expect(a.driver.Published(handle)).To(BeEmpty(), handle)
			}
			Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(1), "one publish for %s", handle)
		}
	})
})

// patchFaults fails the first patches of each object with an API error
// before passing them through.
type patchFaults struct {
	mu sync.Mutex
	// seen counts the patches per "phase/kind/name".
	seen     map[string]int
	injected map[string]int // by error kind
}

func (f *patchFaults) take(key string, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[key]++
	return f.seen[key] <= limit
}

func (f *patchFaults) errFor(obj client.Object, resource string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Alternate so both kinds of error are exercised.
	if (f.injected["conflict"]+f.injected["internal"])%2 == 0 {
		f.injected["conflict"]++
		return apierrors.NewConflict(schema.GroupResource{Resource: resource}, obj.GetName(), errors.New("injected conflict"))
	}
	f.injected["internal"]++
	return apierrors.NewInternalError(errors.New("injected internal error"))
}

var _ = Describe("API server errors", func() {
	It("retries conflicts and 500s on every patch without losing state or repeating CSI calls", func() {
		const (
			driverName = "apierrors.csi.test"
			n          = 20
			// failures of each metadata patch (PV finalizer, VA finalizer,
			// finalizer removal) before it passes.
			metaFailures = 2
		)
		ctx := context.Background()
		objs := &tracker{}
		faults := &patchFaults{seen: map[string]int{}, injected: map[string]int{}}
		// The odd volumes also fail their first "attached: true" status
		// write: the publish then happened, but is not recorded.
		statusFail := map[string]bool{}
		a := startOwnAttacher(driverName, attacherOptions{wrap: func(c client.WithWatch) client.WithWatch {
			return interceptor.NewClient(c, interceptor.Funcs{
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
					phase := "live"
					if !obj.GetDeletionTimestamp().IsZero() {
						phase = "deleting"
					}
					resource := "volumeattachments"
					if _, ok := obj.(*corev1.PersistentVolume); ok {
						resource = "persistentvolumes"
					}
					if faults.take(fmt.Sprintf("%s/%s/%s", phase, resource, obj.GetName()), metaFailures) {
						return faults.errFor(obj, resource)
					}
					return c.Patch(ctx, obj, p, opts...)
				},
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					data, err := p.Data(obj)
					if err == nil && statusFail[obj.GetName()] && strings.Contains(string(data), `"attached":true`) &&
						faults.take("status/"+obj.GetName(), 1) {
						return faults.errFor(obj, "volumeattachments")
					}
					return c.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
			})
		}})
		DeferCleanup(objs.cleanup, ctx)
		finalizer := volume.FinalizerName(driverName)
		node := uniqueName("apierr-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		var pvs []*corev1.PersistentVolume
		var vas []*storagev1.VolumeAttachment
		for i := 0; i < n; i++ {
			pv := newPV(uniqueName("apierr-pv"), driverName, uniqueName("apierr-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("apierr-va"), driverName, node, pv.Name)
			if i%2 == 1 {
				statusFail[va.Name] = true
			}
			pvs, vas = append(pvs, pv), append(vas, va)
		}
		for _, va := range vas {
			objs.create(ctx, va)
		}
		for i, va := range vas {
			got := expectAttached(ctx, va.Name)
			Expect(got.Finalizers).To(Equal([]string{finalizer}), "exactly one finalizer on %s", va.Name)
			Expect(got.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, "id-"+node))
			pv, err := getPV(ctx, pvs[i].Name)
			Expect(err).NotTo(HaveOccurred())
			Expect(pv.Finalizers).To(Equal([]string{finalizer}), "exactly one finalizer on %s", pv.Name)
			handle := pvs[i].Spec.CSI.VolumeHandle
			want := 1
			if statusFail[va.Name] {
				// The status write after a successful publish failed: the
				// VA is not attached, so the next try publishes again
				// (idempotent), as external-attacher does.
				want = 2
			}
			Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(Equal(want), "publishes of %s", handle)
		}

		for _, va := range vas {
			Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		}
		for i, va := range vas {
			expectGone(ctx, va)
			handle := pvs[i].Spec.CSI.VolumeHandle
			Expect(a.driver.Published(handle)).To(BeEmpty(), handle)
			// Each failed finalizer removal after a successful unpublish
			// unpublishes again: idempotent, and never skipped.
			Expect(a.driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1+metaFailures), "unpublishes of %s", handle)
		}
		for _, pv := range pvs {
			Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		}
		for _, pv := range pvs {
			expectGone(ctx, pv)
		}
		GinkgoWriter.Printf("injected API errors: %v\n", faults.injected)
		Expect(faults.injected["conflict"]).To(BeNumerically(">", 0))
		Expect(faults.injected["internal"]).To(BeNumerically(">", 0))
	})
})
