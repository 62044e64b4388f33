package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/cache"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// Secret watch timings: a backoff far longer than the test, so only the
// watch can bring the retry, and how soon the retry must come.
const (
	longBackoff     = 5 * time.Minute
	secretWakeup    = 5 * time.Second
	secretUnwatched = 3 * time.Second
)

var _ = Describe("Secret watch", func() {
	ctx := context.Background()
	objs := specObjects()

	// failingOnSecret creates a CSINode and a PV whose
	// controllerPublishSecretRef names a Secret that does not exist, and a
	// VolumeAttachment of it; it waits for the attach error and returns the
	// VA, the volume handle and the Secret's reference.
	failingOnSecret := func(driverName string) (*storagev1.VolumeAttachment, string, *corev1.SecretReference) {
		GinkgoHelper()
		node := uniqueName("sw-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		ref := &corev1.SecretReference{Namespace: "default", Name: uniqueName("sw-secret")}
		handle := uniqueName("sw-vol")
		pv := newPV(uniqueName("sw-pv"), driverName, handle)
		pv.Spec.CSI.ControllerPublishSecretRef = ref
		objs.create(ctx, pv)
		va := newVA(uniqueName("sw-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, `failed to load secret "default/`+ref.Name+`"`)
		return va, handle, ref
	}

	createSecret := func(ref *corev1.SecretReference, password string) {
		GinkgoHelper()
		objs.create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name},
			Data:       map[string][]byte{"password": []byte(password)},
		})
	}

	It("attaches at once when the missing Secret is created, through the PV and inline", func() {
		const driverName = "secret-watch.csi.test"
		a := startOwnAttacher(driverName, attacherOptions{watchSecrets: true, retryStart: longBackoff, retryMax: longBackoff})
		va, handle, ref := failingOnSecret(driverName)

		inlineHandle := uniqueName("sw-inline")
		inline := &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: uniqueName("sw-inline-va")},
			Spec: storagev1.VolumeAttachmentSpec{
				Attacher: driverName,
				NodeName: va.Spec.NodeName,
				Source: storagev1.VolumeAttachmentSource{InlineVolumeSpec: &corev1.PersistentVolumeSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
						Driver: driverName, VolumeHandle: inlineHandle, ControllerPublishSecretRef: ref,
					}},
				}},
			},
		}
		objs.create(ctx, inline)
		expectAttachError(ctx, inline.Name, `failed to load secret "default/`+ref.Name+`"`)
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(BeZero(), "secrets are read before any CSI call")

		createSecret(ref, "watched-pw")
		for _, name := range []string{va.Name, inline.Name} {
			Eventually(func(g Gomega) {
				got, err := getVA(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Status.Attached).To(BeTrue())
				g.Expect(got.Status.AttachError).To(BeNil())
			}).WithTimeout(secretWakeup).WithPolling(pollInterval).Should(Succeed(), "VolumeAttachment %s", name)
		}
		for _, h := range []string{handle, inlineHandle} {
			calls := callsFor(a.driver, fake.MethodPublish, h)
			Expect(calls).To(HaveLen(1), "exactly one ControllerPublish for %s", h)
			Expect(calls[0].Secrets).To(Equal(map[string]string{"password": "watched-pw"}))
		}
	})

	It("caches Secrets as metadata holding nothing but their identity", func() {
		opts := cache.Options("secret-cache.csi.test", nil)
		opts.Scheme = scheme
		c, err := crcache.New(cfg, opts)
		Expect(err).NotTo(HaveOccurred())
		cacheCtx, cancel := context.WithCancel(ctx)
		DeferCleanup(cancel)
		secretMeta := &metav1.PartialObjectMetadata{}
		secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		_, err = c.GetInformer(cacheCtx, secretMeta)
		Expect(err).NotTo(HaveOccurred())
		go func() {
			defer GinkgoRecover()
			Expect(c.Start(cacheCtx)).To(Succeed())
		}()
		Expect(c.WaitForCacheSync(cacheCtx)).To(BeTrue())

		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "default", Name: uniqueName("sw-cached"),
				Labels:      map[string]string{"app": "db"},
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"c2VjcmV0"}}`},
			},
			Data: map[string][]byte{"password": []byte("secret")},
		}
		objs.create(ctx, secret)
		Eventually(func(g Gomega) {
			got := secretMeta.DeepCopy()
			g.Expect(c.Get(cacheCtx, client.ObjectKeyFromObject(secret), got)).To(Succeed())
			g.Expect(got.ObjectMeta).To(Equal(metav1.ObjectMeta{
				Name: secret.Name, Namespace: secret.Namespace, UID: secret.UID, ResourceVersion: secret.ResourceVersion,
			}))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	})

	It("leaves the attach error to the backoff without WatchSecrets", func() {
		const driverName = "secret-nowatch.csi.test"
		a := startOwnAttacher(driverName, attacherOptions{retryStart: longBackoff, retryMax: longBackoff})
		va, handle, ref := failingOnSecret(driverName)

		createSecret(ref, "unwatched-pw")
		Consistently(func(g Gomega) {
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Attached).To(BeFalse())
			g.Expect(got.Status.AttachError).NotTo(BeNil())
		}).WithTimeout(secretUnwatched).WithPolling(pollInterval).Should(Succeed())
		Expect(a.driver.CallCount(fake.MethodPublish, handle)).To(BeZero())
	})
})
