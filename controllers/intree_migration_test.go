package controllers_test

import (
	"context"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// gcePD is the CSI driver that took over the in-tree GCE PD plugin; the
// fake driver takes its name so csi-translation-lib routes the PVs to it.
const gcePD = "pd.csi.storage.gke.io"

var _ = Describe("CSI migration of in-tree volumes", func() {
	ctx := context.Background()
	objs := specObjects()

	// attachGCEPD attaches one migrated GCE PD and returns the VolumeAttachment
	// name, the PV, the translated handle and the node ID.
	attachGCEPD := func(a *testAttacher) (string, *corev1.PersistentVolume, string, string) {
		GinkgoHelper()
		node := uniqueName("mig-node")
		nodeID := "projects/proj1/zones/testZone/instances/" + node
		objs.create(ctx, newCSINode(node, gcePD, nodeID))
		disk := uniqueName("testpd")
		pv := newGCEPDPV(uniqueName("mig-pv"), disk, "testZone")
		objs.create(ctx, pv)
		va := newVA(uniqueName("mig-va"), gcePD, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		return va.Name, pv, "projects/UNSPECIFIED/zones/testZone/disks/" + disk, nodeID
	}

	It("attaches and detaches a GCE PD PersistentVolume through its translated CSI source", func() {
		a := startOwnAttacher(gcePD, attacherOptions{reconcileSync: reconcileSync})
		vaName, pv, handle, nodeID := attachGCEPD(a)

		var publish *fake.Call
		for _, c := range a.driver.Calls() {
			if c.Method == fake.MethodPublish {
				publish = &c
			}
		}
		Expect(publish).NotTo(BeNil())
		Expect(publish.VolumeID).To(Equal(handle))
		Expect(publish.NodeID).To(Equal(nodeID))
		Expect(publish.VolumeContext).To(Equal(map[string]string{"partition": ""}))
		Expect(publish.Capability.GetMount().GetFsType()).To(Equal("ext4"))
		// RWO with a SINGLE_NODE_MULTI_WRITER driver, as for any CSI PV.
		Expect(publish.Capability.GetAccessMode().GetMode()).To(Equal(csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER))
		got, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).To(ContainElement(volume.FinalizerName(gcePD)))
		Expect(got.Spec.GCEPersistentDisk).NotTo(BeNil(), "the PV itself is never rewritten")

		// The ListVolumes pass finds the translated handle published and
		// leaves the volume alone.
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(4 * reconcileSync).WithPolling(pollInterval).Should(Equal(1))

		va, err := getVA(ctx, vaName)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1))
		Expect(a.driver.Published(handle)).To(BeEmpty())

		Expect(k8sClient.Delete(ctx, got)).To(Succeed())
		expectGone(ctx, got)
	})

	// The real GCE PD driver keeps a migrated disk under its complete ID,
	// with the project and zone the translated handle leaves UNSPECIFIED,
	// and lists it so. Comparing the handle as sent would find every such
	// volume detached and publish it again at every pass.
	It("compares a translated handle with the driver's complete one in the ListVolumes pass", func() {
		cfg := fake.DefaultConfig(gcePD)
		cfg.CanonicalVolumeID = fake.GCEPDVolumeID
		a := startAttacher(cfg, attacherOptions{reconcileSync: reconcileSync})
		DeferCleanup(a.stop)
		vaName, _, handle, nodeID := attachGCEPD(a)
		complete := strings.Replace(handle, "projects/UNSPECIFIED/", "projects/proj1/", 1)
		Expect(a.driver.Published(complete)).To(Equal([]string{nodeID}))

		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(5 * reconcileSync).WithPolling(pollInterval).Should(Equal(1))

		// Detached behind our back, it is found and published again, once.
		a.driver.DetachBehindBack(complete, nodeID)
		Eventually(func() []string { return a.driver.Published(complete) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(Equal([]string{nodeID}))
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(4 * reconcileSync).WithPolling(pollInterval).Should(Equal(2))
		expectAttached(ctx, vaName)
	})

	It("releases the PersistentVolume when migration is rolled back, once no VolumeAttachment uses it", func() {
		a := startOwnAttacher(gcePD, attacherOptions{})
		vaName, pv, handle, _ := attachGCEPD(a)
		finalizer := volume.FinalizerName(gcePD)

		// kube-controller-manager hands the volume back to the in-tree plugin.
		rollback := `{"metadata":{"annotations":{"` + volume.MigratedToAnnotation + `":null}}}`
		Expect(k8sClient.Patch(ctx, pv, client.RawPatch(types.MergePatchType, []byte(rollback)))).To(Succeed())
		Consistently(func(g Gomega) {
			got, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(ContainElement(finalizer), "a VolumeAttachment still uses the PV")
		}).WithTimeout(time.Second).WithPolling(pollInterval).Should(Succeed())

		va, err := getVA(ctx, vaName)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.CallCount(fake.MethodUnpublish, handle)).To(Equal(1))
		Eventually(func(g Gomega) {
			got, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.DeletionTimestamp).To(BeNil())
			g.Expect(got.Finalizers).NotTo(ContainElement(finalizer))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	})

	// Portworx's auth Secret is named by two annotations on the PV, which
	// csi-translation-lib turns into the ControllerPublish secret reference.
	It("publishes an in-tree Portworx PersistentVolume with the data of the Secret its annotations name", func() {
		const portworx = "pxd.portworx.com"
		a := startOwnAttacher(portworx, attacherOptions{})
		node := uniqueName("px-node")
		objs.create(ctx, newCSINode(node, portworx, "px-id-"+node))
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("px-auth")},
			Data:       map[string][]byte{"auth-token": []byte("px-token-1")},
		}
		objs.create(ctx, secret)
		handle := uniqueName("px-vol")
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name: uniqueName("px-pv"),
				Annotations: map[string]string{
					volume.MigratedToAnnotation:            portworx,
					"openstorage.io/auth-secret-name":      secret.Name,
					"openstorage.io/auth-secret-namespace": secret.Namespace,
				},
			},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{PortworxVolume: &corev1.PortworxVolumeSource{VolumeID: handle, FSType: "ext4"}},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			},
		}
		objs.create(ctx, pv)
		va := newVA(uniqueName("px-va"), portworx, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)

		var publishes []fake.Call
		for _, c := range a.driver.Calls() {
			if c.Method == fake.MethodPublish && c.VolumeID == handle {
				publishes = append(publishes, c)
			}
		}
		Expect(publishes).To(HaveLen(1))
		Expect(publishes[0].Secrets).To(Equal(map[string]string{"auth-token": "px-token-1"}))

		// Detach sends the same Secret.
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		var unpublish *fake.Call
		for _, c := range a.driver.Calls() {
			if c.Method == fake.MethodUnpublish && c.VolumeID == handle {
				unpublish = &c
			}
		}
		Expect(unpublish).NotTo(BeNil())
		Expect(unpublish.Secrets).To(Equal(map[string]string{"auth-token": "px-token-1"}))
		Expect(a.driver.Published(handle)).To(BeEmpty())
	})

	It("refuses an in-tree PersistentVolume of another plugin with an attachError naming both drivers", func() {
		a := startOwnAttacher(gcePD, attacherOptions{})
		node := uniqueName("mig-node")
		objs.create(ctx, newCSINode(node, gcePD, "projects/p/zones/z/instances/"+node))
		pv := newGCEPDPV(uniqueName("mig-ebs"), "unused", "z")
		pv.Spec.GCEPersistentDisk = nil
		pv.Spec.AWSElasticBlockStore = &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-0123"}
		objs.create(ctx, pv)
		va := newVA(uniqueName("mig-va"), gcePD, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, `PersistentVolume "`+pv.Name+`": CSI volume source names another driver: "ebs.csi.aws.com", not "`+gcePD+`"`)
		Expect(a.driver.CallCount(fake.MethodPublish, "")).To(BeZero())
		got, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).NotTo(ContainElement(volume.FinalizerName(gcePD)))
	})
})
