package controllers_test

import (
	"context"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// A controllerPublish Secret the attacher may not read is reported by
// name; nothing is written and no CSI call is made.
var _ = Describe("A Secret the attacher may not read", func() {
	ctx := context.Background()
	objs := specObjects()

	It("reports a Secret the attacher may not read by name, with no finalizer and no CSI call", func() {
		const driverName = "rbac-nosecret.csi.test"
		restConfig := attacherRBAC(ctx, objs, "csi-attacher-rbac-nosecret", func(cr *rbacv1.ClusterRole) {
			cr.Rules = slices.DeleteFunc(cr.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.Resources, "secrets")
			})
		})
		a := startOwnAttacher(driverName, attacherOptions{restConfig: restConfig})

		node := uniqueName("nosecret-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		secretName := uniqueName("secret")
		objs.create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: secretName},
			Data:       map[string][]byte{"password": []byte("not-for-us")},
		})
		pv := newPV(uniqueName("nosecret-pv"), driverName, uniqueName("nosecret-vol"))
		pv.Spec.CSI.ControllerPublishSecretRef = &corev1.SecretReference{Namespace: "default", Name: secretName}
		objs.create(ctx, pv)
		va := newVA(uniqueName("nosecret-va"), driverName, node, pv.Name)
		objs.create(ctx, va)

		got := expectAttachError(ctx, va.Name, `failed to load secret "default/`+secretName+`"`)
		Expect(got.Status.AttachError.Message).To(ContainSubstring("forbidden"))
		Expect(got.Status.AttachError.Message).NotTo(ContainSubstring("not-for-us"))
		Expect(got.Finalizers).To(BeEmpty())
		expectWarningEvent(ctx, va.Name, "AttachFailed", "forbidden")
		Expect(a.driver.CallCount(fake.MethodPublish, pv.Spec.CSI.VolumeHandle)).To(BeZero())
	})
})
