package controllers_test

import (
	"context"
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// eventsIn lists the Events of namespace in both APIs: the recorder writes
// events.k8s.io/v1, which the core API serves too.
func eventsIn(ctx context.Context, namespace string) string {
	GinkgoHelper()
	ev := &eventsv1.EventList{}
	Expect(k8sClient.List(ctx, ev, client.InNamespace(namespace))).To(Succeed())
	core := &corev1.EventList{}
	Expect(k8sClient.List(ctx, core, client.InNamespace(namespace))).To(Succeed())
	data, err := json.Marshal([]any{ev, core})
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

var _ = Describe("secret", func() {
	const (
		driverName = "secret.csi.test"
		value1     = "sup3r-s3cr3t-value"
		value2     = "another-hidden-1"
	)

	It("reaches the driver but never the logs, the status or Events, even at the most verbose level", func() {
		ctx := context.Background()
		objs := &tracker{}
		DeferCleanup(objs.cleanup, ctx)

		logger, logs := bufferLogger()
		a := startAttacher(fake.DefaultConfig(driverName), attacherOptions{logger: logger})
		DeferCleanup(a.stop)
		driver := a.driver

		node := uniqueName("node")
		nodeID := "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("secret")},
			Data: map[string][]byte{
				"password": []byte(value1),
				"token":    []byte(value2),
			},
		}
		objs.create(ctx, secret)
		handle := uniqueName("vol")
		pv := newPV(uniqueName("pv"), driverName, handle)
		pv.Spec.CSI.ControllerPublishSecretRef = &corev1.SecretReference{Namespace: "default", Name: secret.Name}
		objs.create(ctx, pv)

		// One failed publish first, so that an attachError and a Warning
		// Event exist and can be searched for the secrets too.
		driver.InjectError(fake.MethodPublish, handle, codes.Internal, 0)
		va := newVA(uniqueName("va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		failed := expectAttachError(ctx, va.Name, "Internal")
		expectWarningEvent(ctx, va.Name, "AttachFailed", "Internal")
		driver.ClearFaults()

		attached := expectAttached(ctx, va.Name)
		Expect(attached.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, nodeID))
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(driver.Published(handle)).To(BeEmpty())

		want := map[string]string{"password": value1, "token": value2}
		publishes := callsFor(driver, fake.MethodPublish, handle)
		Expect(len(publishes)).To(BeNumerically(">=", 2), "failed and successful ControllerPublishVolume calls")
		for _, c := range publishes {
			Expect(c.Secrets).To(Equal(want))
		}
		unpublishes := callsFor(driver, fake.MethodUnpublish, handle)
		Expect(unpublishes).To(HaveLen(1))
		Expect(unpublishes[0].Secrets).To(Equal(want))

		out := logs.String()
		Expect(out).NotTo(BeEmpty())
		// Bodies were logged: the request of each call, with the secrets
		// stripped, and the handle (not a secret) in clear.
		Expect(out).To(ContainSubstring("ControllerPublishVolume"))
		Expect(out).To(ContainSubstring("ControllerUnpublishVolume"))
		Expect(out).To(ContainSubstring("GRPC call"))
		Expect(out).To(ContainSubstring(csi.StrippedValue))
		Expect(out).To(ContainSubstring(handle))
		Expect(out).To(ContainSubstring("GRPC error"), "the injected failure is logged")

		for _, v := range []string{value1, value2} {
			Expect(out).NotTo(ContainSubstring(v), "log")
			for _, status := range []any{failed.Status, attached.Status} {
				data, err := json.Marshal(status)
				Expect(err).NotTo(HaveOccurred())
				Expect(string(data)).NotTo(ContainSubstring(v), "VolumeAttachment status")
			}
			Expect(eventsIn(ctx, "default")).NotTo(ContainSubstring(v), "Events")
		}
	})
})
