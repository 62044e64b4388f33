package controllers_test

import (
	"context"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

var _ = Describe("Attach and detach", func() {
	var (
		ctx       context.Context
		objs      *tracker
		driver    *fake.Driver
		finalizer = volume.FinalizerName(fullDriver)
		node      string
		nodeID    string
	)

	BeforeEach(func() {
		ctx = context.Background()
		objs = &tracker{}
		driver = attachers[fullDriver].driver
		node = uniqueName("node")
		nodeID = "id-" + node
		objs.create(ctx, newCSINode(node, fullDriver, nodeID))
	})
	AfterEach(func() {
		objs.cleanup(ctx)
	})

	// attachedPV creates a PV and a VA of the full driver and waits for the
	// attachment.
	attachedPV := func(mutate ...func(*corev1.PersistentVolume)) (*corev1.PersistentVolume, *storagev1.VolumeAttachment) {
		GinkgoHelper()
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		for _, m := range mutate {
			m(pv)
		}
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		return pv, expectAttached(ctx, va.Name)
	}

	It("attaches a volume: PV finalizer, VA finalizer and node ID, ControllerPublishVolume, status", func() {
		pv, va := attachedPV()
		handle := pv.Spec.CSI.VolumeHandle

		Expect(va.Finalizers).To(ConsistOf(finalizer))
		Expect(va.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, nodeID))
		Expect(va.Status.AttachmentMetadata).To(Equal(map[string]string{"devicePath": "/dev/fake/" + handle}))
		Expect(driver.Published(handle)).To(Equal([]string{nodeID}))

		got, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).To(ConsistOf(finalizer))

		calls := callsFor(driver, fake.MethodPublish, handle)
		Expect(calls).To(HaveLen(1), "exactly one ControllerPublishVolume for one attachment")
		c := calls[0]
		Expect(c.NodeID).To(Equal(nodeID))
		Expect(c.ReadOnly).To(BeFalse())
		Expect(c.VolumeContext).To(Equal(map[string]string{"pool": "fast"}))
		Expect(c.Secrets).To(BeEmpty())
		Expect(c.Capability.GetAccessMode().GetMode()).To(Equal(csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER))
		Expect(c.Capability.GetMount().GetFsType()).To(Equal(defaultFSType))
	})

	It("detaches a deleted VolumeAttachment and releases the PV once it is deleted", func() {
		pv, va := attachedPV()
		handle := pv.Spec.CSI.VolumeHandle

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(driver.Published(handle)).To(BeEmpty())
		Expect(driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1))
		Expect(callsFor(driver, fake.MethodUnpublish, handle)[0].NodeID).To(Equal(nodeID))

		// The PV keeps our finalizer until it is deleted itself.
		Consistently(func(g Gomega) {
			got, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(ContainElement(finalizer))
		}).WithTimeout(time.Second).WithPolling(pollInterval).Should(Succeed())

		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		expectGone(ctx, pv)
	})

	It("keeps the PV finalizer while a VolumeAttachment references the PV", func() {
		pv, va := attachedPV()
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		Consistently(func(g Gomega) {
			got, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.DeletionTimestamp).NotTo(BeNil())
			g.Expect(got.Finalizers).To(ContainElement(finalizer))
		}).WithTimeout(consistentFor).WithPolling(pollInterval).Should(Succeed())

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		expectGone(ctx, pv)
	})

	It("leaves VolumeAttachments of another driver untouched", func() {
		pv := newPV(uniqueName("pv"), unknownDriver, uniqueName("vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), unknownDriver, node, pv.Name)
		objs.create(ctx, va)
		Consistently(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(BeEmpty())
			g.Expect(got.Annotations).To(BeEmpty())
			g.Expect(got.Status).To(Equal(storagev1.VolumeAttachmentStatus{}))
			gotPV, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(gotPV.Finalizers).To(BeEmpty())
		}).WithTimeout(consistentFor).WithPolling(pollInterval).Should(Succeed())
		for _, a := range attachers {
			Expect(a.driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(BeZero())
		}
	})

	It("reports a missing PV by name and attaches once it appears", func() {
		pvName := uniqueName("pv")
		va := newVA(uniqueName("va"), fullDriver, node, pvName)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, `PersistentVolume "`+pvName+`" not found`)
		Expect(got.Finalizers).To(BeEmpty(), "nothing is written before the attachment can proceed")
		expectWarningEvent(ctx, va.Name, "AttachFailed", pvName)

		objs.create(ctx, newPV(pvName, fullDriver, uniqueName("vol")))
		expectAttached(ctx, va.Name)
	})

	It("reports a missing CSINode by name and attaches once it appears", func() {
		otherNode := uniqueName("node")
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, otherNode, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, `CSINode "`+otherNode+`" not found`)
		Expect(driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(BeZero())

		objs.create(ctx, newCSINode(otherNode, fullDriver, "id-"+otherNode))
		got := expectAttached(ctx, va.Name)
		Expect(got.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, "id-"+otherNode))
	})

	It("reports a CSINode without the driver", func() {
		otherNode := uniqueName("node")
		objs.create(ctx, newCSINode(otherNode, unknownDriver, "x"))
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, otherNode, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "CSINode "+otherNode+" does not contain driver "+fullDriver)
	})

	It("reports a missing Secret by name, attaches once it exists and sends its data", func() {
		secretName := uniqueName("secret")
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		pv.Spec.CSI.ControllerPublishSecretRef = &corev1.SecretReference{Namespace: "default", Name: secretName}
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, `failed to load secret "default/`+secretName+`"`)
		Expect(got.Status.AttachError.Message).NotTo(ContainSubstring("s3cr3t"))

		objs.create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: secretName},
			Data:       map[string][]byte{"password": []byte("s3cr3t")},
		})
		expectAttached(ctx, va.Name)
		calls := callsFor(driver, fake.MethodPublish, pv.Spec.CSI.VolumeHandle)
		Expect(calls).NotTo(BeEmpty())
		Expect(calls[len(calls)-1].Secrets).To(Equal(map[string]string{"password": "s3cr3t"}))
	})

	It("refuses a PV that is being deleted, without finalizer or CSI call", func() {
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		pv.Finalizers = []string{"example.com/hold"}
		objs.create(ctx, pv)
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, `PersistentVolume "`+pv.Name+`" is marked for deletion`)
		got, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).To(Equal([]string{"example.com/hold"}))
		Expect(driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(BeZero())
	})

	It("reports an access-mode combination CSI cannot express before writing anything", func() {
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteOnce}
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, `PersistentVolume "`+pv.Name+`"`)
		Expect(got.Status.AttachError.Message).To(ContainSubstring("ReadOnlyMany and ReadWriteOnce"))
		Expect(got.Finalizers).To(BeEmpty())
		gotPV, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(gotPV.Finalizers).To(BeEmpty())
	})

	It("saves a CSI error with its code, then clears it when a retry succeeds", func() {
		handle := uniqueName("vol")
		driver.InjectError(fake.MethodPublish, handle, codes.Internal, 0)
		DeferCleanup(driver.ClearFaults)
		pv := newPV(uniqueName("pv"), fullDriver, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "Internal")
		Expect(got.Status.AttachError.ErrorCode).To(Equal(ptr.To(int32(codes.Internal))))
		Expect(got.Finalizers).To(ContainElement(finalizer), "a failed publish may have attached: keep the finalizer")
		expectWarningEvent(ctx, va.Name, "AttachFailed", "Internal")
		failures := driver.CallCount(fake.MethodPublish, handle)
		Expect(failures).To(BeNumerically(">=", 1))
		driver.ClearFaults()
		expectAttached(ctx, va.Name)
		Expect(driver.Published(handle)).To(Equal([]string{nodeID}))
		Expect(driver.CallCount(fake.MethodPublish, handle)).To(BeNumerically("<=", failures+1), "one successful publish after the failures")
	})

	It("saves errorCode 8 for ResourceExhausted", func() {
		handle := uniqueName("vol")
		driver.InjectError(fake.MethodPublish, handle, codes.ResourceExhausted, 0)
		DeferCleanup(driver.ClearFaults)
		pv := newPV(uniqueName("pv"), fullDriver, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "ResourceExhausted")
		Expect(got.Status.AttachError.ErrorCode).To(Equal(ptr.To(int32(8))))
		driver.ClearFaults()
		expectAttached(ctx, va.Name)
	})

	It("treats a timeout as maybe attached: the finalizer stays and delete unpublishes", func() {
		handle := uniqueName("vol")
		driver.SetLatency(fake.MethodPublish, handle, 3*csiTimeout)
		DeferCleanup(driver.SetLatency, fake.MethodPublish, handle, time.Duration(0))
		pv := newPV(uniqueName("pv"), fullDriver, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "DeadlineExceeded")
		Expect(got.Status.AttachError.ErrorCode).To(Equal(ptr.To(int32(codes.DeadlineExceeded))))
		Expect(got.Finalizers).To(ContainElement(finalizer))
		Expect(got.Status.Attached).To(BeFalse())

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(driver.CallCount(fake.MethodUnpublish, handle)).To(BeNumerically(">=", 1))
	})

	It("unpublishes a volume whose publish answered with an error after attaching", func() {
		handle := uniqueName("vol")
		driver.InjectErrorAfter(fake.MethodPublish, handle, codes.DeadlineExceeded, 0)
		DeferCleanup(driver.ClearFaults)
		pv := newPV(uniqueName("pv"), fullDriver, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "DeadlineExceeded")
		Expect(driver.Published(handle)).To(Equal([]string{nodeID}))

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(driver.Published(handle)).To(BeEmpty(), "no publication is leaked")
	})

	It("keeps a detach error in detachError and the VA until Unpublish succeeds", func() {
		pv, va := attachedPV()
		handle := pv.Spec.CSI.VolumeHandle
		driver.InjectError(fake.MethodUnpublish, handle, codes.Unavailable, 0)
		DeferCleanup(driver.ClearFaults)
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.DetachError).NotTo(BeNil())
			g.Expect(got.Status.DetachError.Message).To(ContainSubstring("Unavailable"))
			g.Expect(got.Finalizers).To(ContainElement(finalizer))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		expectWarningEvent(ctx, va.Name, "DetachFailed", "Unavailable")
		Consistently(func() error { _, err := getVA(ctx, va.Name); return err }).
			WithTimeout(500*time.Millisecond).WithPolling(pollInterval).Should(Succeed(), "the VA stays while Unpublish fails")
		Expect(driver.Published(handle)).To(Equal([]string{nodeID}))
		driver.ClearFaults()
		expectGone(ctx, va)
		Expect(driver.Published(handle)).To(BeEmpty())
	})

	It("detaches with the annotated node ID when the CSINode is gone", func() {
		pv, va := attachedPV()
		Expect(k8sClient.Delete(ctx, newCSINode(node, fullDriver, nodeID))).To(Succeed())
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		calls := callsFor(driver, fake.MethodUnpublish, pv.Spec.CSI.VolumeHandle)
		Expect(calls).To(HaveLen(1))
		Expect(calls[0].NodeID).To(Equal(nodeID))
	})

	It("keeps other controllers' finalizers and clears the status when the VA outlives ours", func() {
		pv := newPV(uniqueName("pv"), fullDriver, uniqueName("vol"))
		pv.Finalizers = []string{"example.com/pv-hold"}
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		va.Finalizers = []string{"example.com/va-hold"}
		objs.create(ctx, va)
		got := expectAttached(ctx, va.Name)
		Expect(got.Finalizers).To(ConsistOf("example.com/va-hold", finalizer))
		gotPV, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(gotPV.Finalizers).To(ConsistOf("example.com/pv-hold", finalizer))

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(Equal([]string{"example.com/va-hold"}))
			g.Expect(got.Status.Attached).To(BeFalse())
			g.Expect(got.Status.AttachmentMetadata).To(BeEmpty())
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	})

	It("attaches a block volume with a block capability", func() {
		pv, _ := attachedPV(func(pv *corev1.PersistentVolume) {
			pv.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
		})
		calls := callsFor(driver, fake.MethodPublish, pv.Spec.CSI.VolumeHandle)
		Expect(calls).To(HaveLen(1))
		Expect(calls[0].Capability.GetBlock()).NotTo(BeNil())
		Expect(calls[0].Capability.GetMount()).To(BeNil())
	})

	It("sends readonly for a read-only PV when the driver has PUBLISH_READONLY", func() {
		pv, _ := attachedPV(func(pv *corev1.PersistentVolume) {
			pv.Spec.CSI.ReadOnly = true
			pv.Spec.CSI.FSType = "xfs"
			pv.Spec.MountOptions = []string{"noatime"}
		})
		calls := callsFor(driver, fake.MethodPublish, pv.Spec.CSI.VolumeHandle)
		Expect(calls).To(HaveLen(1))
		Expect(calls[0].ReadOnly).To(BeTrue())
		Expect(calls[0].Capability.GetMount().GetFsType()).To(Equal("xfs"))
		Expect(calls[0].Capability.GetMount().GetMountFlags()).To(Equal([]string{"noatime"}))
	})

	It("never sends readonly to a driver without PUBLISH_READONLY", func() {
		noroDriver := attachers[noReadonly].driver
		objs.create(ctx, newCSINode(uniqueName("noro-node"), noReadonly, "noro-id"))
		n := objs.objs[len(objs.objs)-1].GetName()
		pv := newPV(uniqueName("pv"), noReadonly, uniqueName("vol"))
		pv.Spec.CSI.ReadOnly = true
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), noReadonly, n, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		calls := callsFor(noroDriver, fake.MethodPublish, pv.Spec.CSI.VolumeHandle)
		Expect(calls).To(HaveLen(1))
		Expect(calls[0].ReadOnly).To(BeFalse())
		Expect(calls[0].Capability.GetAccessMode().GetMode()).To(Equal(csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER))
	})

	It("attaches and detaches an inline volume without a PV", func() {
		handle := uniqueName("vol")
		va := &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: uniqueName("va")},
			Spec: storagev1.VolumeAttachmentSpec{
				Attacher: fullDriver,
				NodeName: node,
				Source: storagev1.VolumeAttachmentSource{InlineVolumeSpec: &corev1.PersistentVolumeSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
						Driver: fullDriver, VolumeHandle: handle, ReadOnly: true,
					}},
				}},
			},
		}
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		Expect(driver.Published(handle)).To(Equal([]string{nodeID}))
		Expect(callsFor(driver, fake.MethodPublish, handle)[0].ReadOnly).To(BeTrue())

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(driver.Published(handle)).To(BeEmpty())
	})

	It("reports a VolumeAttachment with a PV of another driver", func() {
		pv := newPV(uniqueName("pv"), unknownDriver, uniqueName("vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), fullDriver, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, `PersistentVolume "`+pv.Name+`"`)
		Expect(got.Status.AttachError.Message).To(ContainSubstring(unknownDriver))
		Expect(got.Finalizers).To(BeEmpty())
	})
})

var _ = Describe("Trivial mode: a driver without ControllerPublishVolume", func() {
	It("marks the VolumeAttachment attached without finalizers or CSI calls", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)
		pv := newPV(uniqueName("pv"), trivialDriver, uniqueName("vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), trivialDriver, uniqueName("node"), pv.Name)
		objs.create(ctx, va)
		got := expectAttached(ctx, va.Name)
		Expect(got.Finalizers).To(BeEmpty())
		gotPV, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(gotPV.Finalizers).To(BeEmpty())
		Expect(attachers[trivialDriver].driver.CallCount(fake.MethodPublish, "")).To(BeZero())

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
	})
})

var _ = Describe("Attach with the feature gate MutableCSINodeAllocatableCount off", func() {
	It("saves a CSI error without its errorCode, as the reference does with the gate off", func() {
		const driverName = "no-error-code.csi.test"
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{omitErrorCode: true})
		DeferCleanup(objs.cleanup, ctx)
		node := uniqueName("node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		handle := uniqueName("vol")
		a.driver.InjectError(fake.MethodPublish, handle, codes.ResourceExhausted, 0)
		pv := newPV(uniqueName("pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		got := expectAttachError(ctx, va.Name, "ResourceExhausted")
		Expect(got.Status.AttachError.ErrorCode).To(BeNil())
	})
})
