package controllers_test

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

var _ = Describe("Bad input", Ordered, func() {
	const driverName = "badinput.csi.test"
	var (
		ctx    = context.Background()
		objs   = &tracker{}
		a      *testAttacher
		node   string
		nodeID string
	)

	BeforeAll(func() {
		a = startOwnAttacher(driverName, attacherOptions{})
		DeferCleanup(objs.cleanup, ctx)
		node = uniqueName("bad-node")
		nodeID = "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
	})

	// stillWorks attaches a good volume: the process survived the bad one.
	stillWorks := func() {
		GinkgoHelper()
		pv := newPV(uniqueName("bad-good-pv"), driverName, uniqueName("bad-good-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("bad-good-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
	}

	// expectRefused checks the common promise for input that can never
	// work: an attachError naming the object and the cause, a Warning
	// Event, no finalizer on the VA (nor on pvName when set), no CSI call.
	expectRefused := func(va *storagev1.VolumeAttachment, pvName string, names, cause string) {
		GinkgoHelper()
		publishes := a.driver.CallCount(fake.MethodPublish, "")
		got := expectAttachError(ctx, va.Name, cause)
		Expect(got.Status.AttachError.Message).To(ContainSubstring(names))
		Expect(got.Status.AttachError.ErrorCode).To(BeNil(), "no CSI call, so no gRPC code")
		Expect(got.Status.Attached).To(BeFalse())
		Expect(got.Finalizers).To(BeEmpty())
		expectWarningEvent(ctx, va.Name, "AttachFailed", cause)
		if pvName != "" {
			pv, err := getPV(ctx, pvName)
			Expect(err).NotTo(HaveOccurred())
			Expect(pv.Finalizers).To(BeEmpty())
		}
		Expect(a.driver.CallCount(fake.MethodPublish, "")).To(Equal(publishes), "no ControllerPublishVolume")
		stillWorks()
	}

	// createOrRejected creates obj, or checks that the API server refuses
	// it as invalid (then there is nothing for the attacher to handle).
	createOrRejected := func(obj interface {
		GetName() string
	}, create func() error, field string) bool {
		GinkgoHelper()
		err := create()
		if apierrors.IsInvalid(err) {
			Expect(err.Error()).To(ContainSubstring(field))
			AddReportEntry(fmt.Sprintf("%s rejected by the API server", obj.GetName()), err.Error())
			GinkgoWriter.Printf("the API server rejects it: %v\n", err)
			return false
		}
		Expect(err).NotTo(HaveOccurred())
		return true
	}

	It("refuses a VA with both persistentVolumeName and inlineVolumeSpec (the API server rejects it first)", func() {
		pv := newPV(uniqueName("bad-pv"), driverName, uniqueName("bad-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("bad-va"), driverName, node, pv.Name)
		va.Spec.Source.InlineVolumeSpec = &corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: driverName, VolumeHandle: uniqueName("bad-vol"),
			}},
		}
		if createOrRejected(va, func() error { return k8sClient.Create(ctx, va) }, "spec.source") {
			objs.objs = append(objs.objs, va)
			expectRefused(va, pv.Name, va.Name, volume.ErrBothSources.Error())
		}
	})

	It("refuses a VA whose inline spec has no CSI source (or the API server rejects it)", func() {
		va := newVA(uniqueName("bad-va"), driverName, node, "")
		va.Spec.Source.PersistentVolumeName = nil
		va.Spec.Source.InlineVolumeSpec = &corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/tmp/x",
			}},
		}
		if createOrRejected(va, func() error { return k8sClient.Create(ctx, va) }, "inlineVolumeSpec") {
			objs.objs = append(objs.objs, va)
			expectRefused(va, "", "inline volume spec", volume.ErrInlineNilCSI.Error())
		}
	})

	It("refuses a PV with no CSI source (hostPath), naming the PV", func() {
		pv := newPV(uniqueName("bad-pv"), driverName, "x")
		pv.Spec.CSI = nil
		pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/tmp/bad"}
		objs.create(ctx, pv)
		va := newVA(uniqueName("bad-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectRefused(va, pv.Name, `PersistentVolume "`+pv.Name+`"`, volume.ErrNotCSI.Error())
	})

	It("refuses a PV with an empty volumeHandle (or the API server rejects it)", func() {
		pv := newPV(uniqueName("bad-pv"), driverName, "")
		if createOrRejected(pv, func() error { return k8sClient.Create(ctx, pv) }, "volumeHandle") {
			objs.objs = append(objs.objs, pv)
			va := newVA(uniqueName("bad-va"), driverName, node, pv.Name)
			objs.create(ctx, va)
			expectRefused(va, pv.Name, `PersistentVolume "`+pv.Name+`"`, volume.ErrEmptyHandle.Error())
		}
	})

	It("refuses a CSINode whose driver entry has an empty nodeID (or the API server rejects it)", func() {
		otherNode := uniqueName("bad-node")
		csiNode := newCSINode(otherNode, driverName, "")
		if createOrRejected(csiNode, func() error { return k8sClient.Create(ctx, csiNode) }, "nodeID") {
			objs.objs = append(objs.objs, csiNode)
			pv := newPV(uniqueName("bad-pv"), driverName, uniqueName("bad-vol"))
			objs.create(ctx, pv)
			va := newVA(uniqueName("bad-va"), driverName, otherNode, pv.Name)
			objs.create(ctx, va)
			expectRefused(va, pv.Name, "CSINode "+otherNode, "empty node ID")
		}
	})

	It("makes an oversized publish context (300 keys of 1 KiB) visible: the API server refuses attachmentMetadata over 256 KiB, the VA stays unattached with attachError and a Warning Event, and a smaller context then attaches", func() {
		handle := uniqueName("bad-vol")
		big := map[string]string{}
		for i := 0; i < 300; i++ {
			big[fmt.Sprintf("key-%03d", i)] = strings.Repeat("x", 1024)
		}
		a.driver.SetPublishContext(handle, big)
		DeferCleanup(a.driver.SetPublishContext, handle, map[string]string(nil))
		pv := newPV(uniqueName("bad-pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("bad-va"), driverName, node, pv.Name)
		objs.create(ctx, va)

		// The write of attached=true with the metadata is refused; the
		// error alone fits in the status.
		got := expectAttachError(ctx, va.Name, "could not be marked attached")
		Expect(got.Status.AttachError.Message).To(ContainSubstring(`VolumeAttachment "` + va.Name + `"`))
		Expect(got.Status.AttachError.Message).To(ContainSubstring("attachmentMetadata"))
		expectWarningEvent(ctx, va.Name, "AttachFailed", "attachmentMetadata")
		Expect(got.Status.Attached).To(BeFalse())
		Expect(got.Status.AttachmentMetadata).To(BeEmpty())
		Expect(got.Finalizers).To(ContainElement(volume.FinalizerName(driverName)), "published: the finalizer must stay")
		Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}))
		GinkgoWriter.Printf("attachError after the refused write: %s\n", got.Status.AttachError.Message)
		stillWorks()

		// Once the driver answers sensibly the VA attaches, and detach works.
		a.driver.SetPublishContext(handle, map[string]string{"devicePath": "/dev/ok"})
		got = expectAttached(ctx, va.Name)
		Expect(got.Status.AttachmentMetadata).To(Equal(map[string]string{"devicePath": "/dev/ok"}))
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.Published(handle)).To(BeEmpty())
	})

	It("saves every gRPC code 1..16 from ControllerPublishVolume as errorCode, then attaches them all once the faults clear", func() {
		DeferCleanup(a.driver.ClearFaults)
		vas := map[codes.Code]*storagev1.VolumeAttachment{}
		// All PVs first, so each VA's first failure (whose note the Event
		// keeps) is its gRPC code, not a PV the cache has not seen yet.
		for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
			handle := uniqueName("bad-code-vol")
			a.driver.InjectError(fake.MethodPublish, handle, c, 0)
			pv := newPV(uniqueName("bad-code-pv"), driverName, handle)
			objs.create(ctx, pv)
			vas[c] = newVA(uniqueName("bad-code-va"), driverName, node, pv.Name)
		}
		for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
			objs.create(ctx, vas[c])
		}
		for c, va := range vas {
			got := expectAttachError(ctx, va.Name, c.String())
			Expect(got.Status.AttachError.ErrorCode).To(Equal(ptr.To(int32(c))), "code %s", c)
			Expect(got.Status.AttachError.Message).To(ContainSubstring("ControllerPublishVolume"), "code %s", c)
			Expect(got.Status.Attached).To(BeFalse())
			expectWarningEvent(ctx, va.Name, "AttachFailed", "["+c.String()+"]")
		}
		a.driver.ClearFaults()
		for _, va := range vas {
			expectAttached(ctx, va.Name)
		}
	})
})
