package controllers_test

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// secretGets counts the GETs of Secrets that pass through a reader.
type secretGets struct {
	client.Reader
	n *atomic.Int64
}

func (r secretGets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		r.n.Add(1)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

var _ = Describe("Full nodes and waiting calls", func() {
	objs := specObjects()

	It("takes the call slot before any work: one Secret GET per attach while the calls queue for --max-inflight=1", func(ctx SpecContext) {
		const (
			driverName = "slot-first.csi.test"
			volumes    = 200
			latency    = 100 * time.Millisecond
		)
		gets := &atomic.Int64{}
		a := startOwnAttacher(driverName, attacherOptions{
			workers: 50, timeout: 10 * time.Second, maxInflight: 1,
			wrapAPIReader: func(r client.Reader) client.Reader { return secretGets{Reader: r, n: gets} },
		})
		a.driver.SetLatency(fake.MethodPublish, "", latency)

		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("slot-first-secret")},
			StringData: map[string]string{"password": "s3cret"}}
		objs.create(ctx, secret)
		node := uniqueName("slot-first-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		var vas []string
		for range volumes {
			pv := newPV(uniqueName("slot-first-pv"), driverName, uniqueName("slot-first-vol"))
			pv.Spec.CSI.ControllerPublishSecretRef = &corev1.SecretReference{Namespace: secret.Namespace, Name: secret.Name}
			objs.create(ctx, pv)
			va := newVA(uniqueName("slot-first-va"), driverName, node, pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va.Name)
		}
		began := time.Now()
		Eventually(func(g Gomega) {
			for _, name := range vas {
				va, err := getVA(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(va.Status.Attached).To(BeTrue(), "VolumeAttachment %s", name)
				// Waiting for a slot is no failure: nothing is written.
				g.Expect(va.Status.AttachError).To(BeNil(), "VolumeAttachment %s", name)
			}
		}).WithTimeout(volumes*latency + time.Minute).WithPolling(time.Second).Should(Succeed())
		GinkgoWriter.Printf("%d volumes attached one call at a time in %s; %d Secret GETs\n", volumes, time.Since(began).Round(100*time.Millisecond), gets.Load())
		Expect(a.driver.MaxConcurrent(fake.MethodPublish)).To(Equal(1))
		Expect(a.driver.CallCount(fake.MethodPublish, "")).To(Equal(volumes))
		// One GET per attach, and a few for reconciles that found the
		// attachment's slot taken by its own earlier reconcile.
		Expect(gets.Load()).To(BeNumerically(">=", volumes))
		Expect(gets.Load()).To(BeNumerically("<=", volumes+volumes/20))
	}, SpecTimeout(5*time.Minute))

	It("slows only the full nodes' volumes, records the driver's ResourceExhausted on them, and attaches them once the nodes have room", func(ctx SpecContext) {
		const (
			driverName = "full-nodes.csi.test"
			bound      = 8
			latency    = 300 * time.Millisecond
			perFull    = 3
			perHealthy = 8
		)
		a := startOwnAttacher(driverName, attacherOptions{workers: 20, timeout: 10 * time.Second, maxInflight: bound})
		a.driver.SetLatency(fake.MethodPublish, "", latency)
		full := []string{uniqueName("full-a"), uniqueName("full-b"), uniqueName("full-c")}
		healthy := []string{uniqueName("healthy-a"), uniqueName("healthy-b")}
		for _, n := range append(append([]string{}, full...), healthy...) {
			objs.create(ctx, newCSINode(n, driverName, "id-"+n))
		}
		for _, n := range full {
			a.driver.InjectNodeError(fake.MethodPublish, "id-"+n, codes.ResourceExhausted, "node "+n+" has no room for another volume", 0)
		}
		create := func(nodes []string, per int) []string {
			var names []string
			for i := range per * len(nodes) {
				pv := newPV(uniqueName("full-nodes-pv"), driverName, uniqueName("full-nodes-vol"))
				objs.create(ctx, pv)
				va := newVA(uniqueName("full-nodes-va"), driverName, nodes[i%len(nodes)], pv.Name)
				objs.create(ctx, va)
				names = append(names, va.Name)
			}
			return names
		}
		stuck := create(full, perFull)
		for _, name := range create(healthy, perHealthy) {
			expectAttached(ctx, name)
		}
		// The driver's own ResourceExhausted is recorded, with its code.
		for _, name := range stuck {
			va := expectAttachError(ctx, name, "has no room for another volume")
			Expect(va.Status.AttachError.ErrorCode).NotTo(BeNil())
			Expect(va.Status.AttachError.ErrorCode).To(HaveValue(Equal(int32(codes.ResourceExhausted))))
			Expect(va.Status.Attached).To(BeFalse())
		}
		// The stuck attachments retry with their backoff for a while...
		Eventually(func(g Gomega) {
			for _, name := range stuck {
				g.Expect(a.driver.CallCount(fake.MethodPublish, volumeOf(ctx, name))).To(BeNumerically(">=", 4), "VolumeAttachment %s", name)
			}
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())

		// ...and new volumes on the other nodes still get the full bound of
		// calls at once (calls of a second, so they overlap however slowly
		// the objects are created).
		a.driver.SetLatency(fake.MethodPublish, "", time.Second)
		a.driver.ResetCalls()
		for _, name := range create(healthy, perHealthy) {
			expectAttached(ctx, name)
		}
		var onHealthy []fake.Call
		for _, c := range a.driver.Calls() {
			if c.Method == fake.MethodPublish && !c.End.IsZero() && c.Code == codes.OK {
				onHealthy = append(onHealthy, c)
			}
		}
		Expect(onHealthy).To(HaveLen(perHealthy * len(healthy)))
		// The stuck attachments' retries may hold a slot or two meanwhile.
		Expect(maxOverlap(onHealthy)).To(BeNumerically(">", bound/2), "the bound of calls in flight was lowered by the full nodes")

		// The full nodes have room again: their volumes attach within
		// --retry-interval-max and a little.
		roomAt := time.Now()
		for _, n := range full {
			a.driver.ClearNodeError(fake.MethodPublish, "id-"+n)
		}
		Eventually(func(g Gomega) {
			for _, name := range stuck {
				va, err := getVA(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(va.Status.Attached).To(BeTrue(), "VolumeAttachment %s", name)
			}
		}).WithTimeout(retryMax + 3*time.Second).WithPolling(pollInterval).Should(Succeed())
		GinkgoWriter.Printf("the full nodes' volumes attached %s after the nodes had room\n", time.Since(roomAt).Round(10*time.Millisecond))
	}, SpecTimeout(3*time.Minute))

	It("writes nothing for an attachment that waits for its node's slot, and wakes it when the slot frees", func(ctx SpecContext) {
		const (
			driverName = "node-slot.csi.test"
			volumes    = 8
			latency    = 300 * time.Millisecond
		)
		a := startOwnAttacher(driverName, attacherOptions{workers: 10, timeout: 10 * time.Second, maxInflightPerNode: 1,
			retryStart: time.Second, retryMax: 30 * time.Second})
		a.driver.SetLatency(fake.MethodPublish, "", latency)
		node := uniqueName("node-slot")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		var vas []string
		for range volumes {
			pv := newPV(uniqueName("node-slot-pv"), driverName, uniqueName("node-slot-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("node-slot-va"), driverName, node, pv.Name)
			objs.create(ctx, va)
			vas = append(vas, va.Name)
		}
		began := time.Now()
		Eventually(func(g Gomega) {
			for _, name := range vas {
				va, err := getVA(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(va.Status.AttachError).To(BeNil(), "VolumeAttachment %s", name)
				g.Expect(va.Status.Attached).To(BeTrue(), "VolumeAttachment %s", name)
			}
		}).WithTimeout(eventually).WithPolling(50 * time.Millisecond).Should(Succeed())
		took := time.Since(began)
		GinkgoWriter.Printf("%d volumes attached one at a time on one node in %s\n", volumes, took.Round(10*time.Millisecond))
		// Woken as the node's calls end, not at the end of a backoff that
		// starts at 1 s and doubles.
		Expect(took).To(BeNumerically("<", volumes*latency+3*time.Second))
		Expect(a.driver.CallCount(fake.MethodPublish, "")).To(Equal(volumes))
	}, SpecTimeout(2*time.Minute))
})

// volumeOf is the volume handle of a VolumeAttachment's PersistentVolume.
func volumeOf(ctx context.Context, vaName string) string {
	GinkgoHelper()
	va, err := getVA(ctx, vaName)
	Expect(err).NotTo(HaveOccurred())
	pv, err := getPV(ctx, *va.Spec.Source.PersistentVolumeName)
	Expect(err).NotTo(HaveOccurred())
	return pv.Spec.CSI.VolumeHandle
}
