package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// countingRecorder counts the Events the attacher emits, per object name
// and reason, as they are emitted: the API's Event series only show how
// the recorder aggregated them.
type countingRecorder struct {
	events.EventRecorder
	mu     sync.Mutex
	counts map[string]int
}

func newCountingRecorder() *countingRecorder {
	return &countingRecorder{counts: map[string]int{}}
}

func (c *countingRecorder) wrap(r events.EventRecorder) events.EventRecorder {
	c.EventRecorder = r
	return c
}

func (c *countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if ref, ok := regarding.(*corev1.ObjectReference); ok {
		c.mu.Lock()
		c.counts[ref.Name+"/"+reason]++
		c.mu.Unlock()
	}
	c.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (c *countingRecorder) count(name, reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name+"/"+reason]
}

var _ = Describe("An attachment that can never work", func() {
	const driverName = "terminal.csi.test"
	ctx := context.Background()
	objs := specObjects()

	// Longer than several backoff retries (100 ms doubling up to 2 s) take.
	const quiet = 3 * retryMax / 2

	DescribeTable("is tried once, and again only when the VolumeAttachment changes",
		func(cause string, spec func(pv *corev1.PersistentVolume)) {
			rec := newCountingRecorder()
			a := startOwnAttacher(driverName, attacherOptions{wrapRecorder: rec.wrap})
			node := uniqueName("term-node")
			objs.create(ctx, newCSINode(node, driverName, "id-"+node))
			pv := newPV(uniqueName("term-pv"), driverName, uniqueName("term-vol"))
			spec(pv)
			objs.create(ctx, pv)
			va := newVA(uniqueName("term-va"), driverName, node, pv.Name)
			objs.create(ctx, va)

			got := expectAttachError(ctx, va.Name, cause)
			Expect(got.Status.AttachError.Message).To(ContainSubstring(pv.Name))
			Expect(got.Finalizers).To(BeEmpty())
			expectWarningEvent(ctx, va.Name, "AttachFailed", cause)
			Consistently(func() int { return rec.count(va.Name, "AttachFailed") }).
				WithTimeout(quiet).WithPolling(pollInterval).Should(Equal(1), "one attempt, one Event")

			// A change to the VolumeAttachment is a new chance: one more
			// attempt, and again none after it.
			first := got.Status.AttachError.Time
			time.Sleep(time.Second) // the error's time has a resolution of one second
			base := got.DeepCopy()
			got.Labels = map[string]string{"fixed": "maybe"}
			Expect(k8sClient.Patch(ctx, got, client.MergeFrom(base))).To(Succeed())
			Eventually(func() int { return rec.count(va.Name, "AttachFailed") }).
				WithTimeout(eventually).WithPolling(pollInterval).Should(Equal(2))
			Eventually(func(g Gomega) {
				cur, err := getVA(ctx, va.Name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cur.Status.AttachError).NotTo(BeNil())
				g.Expect(cur.Status.AttachError.Time.After(first.Time)).To(BeTrue(), "the new attempt saved its error")
			}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
			Consistently(func() int { return rec.count(va.Name, "AttachFailed") }).
				WithTimeout(quiet).WithPolling(pollInterval).Should(Equal(2))
			Expect(a.driver.CallCount(fake.MethodPublish, "")).To(BeZero())
			AddReportEntry("terminal attach error", fmt.Sprintf("%s: 1 attempt in %s, then 1 after the change", cause, quiet))
		},
		Entry("a PersistentVolume without a CSI source", volume.ErrNotCSI.Error(), func(pv *corev1.PersistentVolume) {
			pv.Spec.CSI = nil
			pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/tmp/never"}
		}),
		Entry("a PersistentVolume of another driver", volume.ErrWrongCSIDriver.Error(), func(pv *corev1.PersistentVolume) {
			pv.Spec.CSI.Driver = "someone-else.csi.test"
		}),
		Entry("access modes CSI cannot express", "CSI does not support ReadOnlyMany and ReadWriteOnce", func(pv *corev1.PersistentVolume) {
			pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteOnce}
		}),
	)

	It("is tried again at once when its PersistentVolume is fixed", func() {
		rec := newCountingRecorder()
		startOwnAttacher(driverName, attacherOptions{wrapRecorder: rec.wrap})
		node := uniqueName("term-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		pv := newPV(uniqueName("term-pv"), driverName, uniqueName("term-vol"))
		pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteOnce}
		objs.create(ctx, pv)
		va := newVA(uniqueName("term-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "ReadOnlyMany and ReadWriteOnce")
		Consistently(func() int { return rec.count(va.Name, "AttachFailed") }).
			WithTimeout(quiet).WithPolling(pollInterval).Should(Equal(1))

		// A PV's access modes can change: fixing them unblocks the attachment.
		base := pv.DeepCopy()
		pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
		Expect(k8sClient.Patch(ctx, pv, client.MergeFrom(base))).To(Succeed())
		expectAttached(ctx, va.Name)
		Expect(rec.count(va.Name, "AttachFailed")).To(Equal(1))
		cleanupVA(ctx, va.Name)
	})
})
