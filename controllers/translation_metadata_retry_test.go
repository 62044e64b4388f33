package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// promptly is how soon a fix must take effect: far below --resync and the
// backoff these specs set, so only the PV's own event can explain it.
const promptly = 5 * time.Second

// An in-tree PersistentVolume that csi-translation-lib cannot translate, or
// that names the wrong Secret, is often fixed by a label or an annotation,
// not by its spec: the attachment is retried as soon as the metadata that
// translation reads changes.
var _ = Describe("A migrated PersistentVolume fixed by its labels or annotations", func() {
	ctx := context.Background()
	objs := specObjects()

	It("is attached promptly once a GCE PD's zone label is fixed", func() {
		a := startOwnAttacher(gcePD, attacherOptions{retryStart: time.Minute, retryMax: 10 * time.Minute})
		node := uniqueName("tz-node")
		objs.create(ctx, newCSINode(node, gcePD, "projects/proj1/zones/us-central1-a/instances/"+node))
		disk := uniqueName("tzpd")
		// Zones of two regions: no regional disk can span them.
		pv := newGCEPDPV(uniqueName("tz-pv"), disk, "us-central1-a__europe-west1-b")
		objs.create(ctx, pv)
		va := newVA(uniqueName("tz-va"), gcePD, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "cannot translate the in-tree source to CSI")
		// Terminal: nothing retries it by itself.
		Consistently(func() int { return a.driver.CallCount(fake.MethodPublish, "") }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(BeZero())

		base := pv.DeepCopy()
		pv.Labels[corev1.LabelTopologyZone] = "us-central1-a"
		Expect(k8sClient.Patch(ctx, pv, client.MergeFrom(base))).To(Succeed())
		fixed := time.Now()
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Attached).To(BeTrue())
		}).WithTimeout(promptly).WithPolling(pollInterval).Should(Succeed(), "attached well before any resync or retry")
		GinkgoWriter.Printf("zone label fixed: attached after %v\n", time.Since(fixed))
		Expect(a.driver.Published("projects/UNSPECIFIED/zones/us-central1-a/disks/" + disk)).To(HaveLen(1))
		cleanupVA(ctx, va.Name)
	})

	It("is attached promptly once a Portworx PV's Secret annotations name an existing Secret", func() {
		const portworx = "pxd.portworx.com"
		a := startOwnAttacher(portworx, attacherOptions{retryStart: time.Minute, retryMax: 10 * time.Minute})
		node := uniqueName("ta-node")
		objs.create(ctx, newCSINode(node, portworx, "px-id-"+node))
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("ta-auth")},
			Data:       map[string][]byte{"auth-token": []byte("px-token")},
		}
		objs.create(ctx, secret)
		handle := uniqueName("ta-vol")
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name: uniqueName("ta-pv"),
				Annotations: map[string]string{
					volume.MigratedToAnnotation:            portworx,
					"openstorage.io/auth-secret-name":      "no-such-secret",
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
		va := newVA(uniqueName("ta-va"), portworx, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "no-such-secret")

		base := pv.DeepCopy()
		pv.Annotations["openstorage.io/auth-secret-name"] = secret.Name
		Expect(k8sClient.Patch(ctx, pv, client.MergeFrom(base))).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Attached).To(BeTrue())
		}).WithTimeout(promptly).WithPolling(pollInterval).Should(Succeed(), "attached well before the next retry (1 min)")
		Expect(a.driver.Published(handle)).To(HaveLen(1))
		cleanupVA(ctx, va.Name)
	})
})
