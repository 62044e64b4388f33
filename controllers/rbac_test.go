package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/rights"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// loadRBAC reads one object of config/rbac.
func loadRBAC[T any](file string) *T {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", file))
	Expect(err).NotTo(HaveOccurred())
	obj := new(T)
	Expect(yaml.UnmarshalStrict(data, obj)).To(Succeed(), file)
	return obj
}

// attacherRBAC creates the ClusterRole, Role and both bindings of
// config/rbac for the ServiceAccount default/saName, as the kustomization
// would in namespace "default" (under unique names, so the test owns them),
// and returns a client config authenticated as that ServiceAccount's user.
// mutate may change the ClusterRole's rules before it is created.
func attacherRBAC(ctx context.Context, objs *tracker, saName string, mutate func(*rbacv1.ClusterRole)) *rest.Config {
	GinkgoHelper()
	const ns = "default"

	cr := loadRBAC[rbacv1.ClusterRole]("role.yaml")
	Expect(cr.Kind).To(Equal("ClusterRole"))
	Expect(cr.Rules).NotTo(BeEmpty())
	crb := loadRBAC[rbacv1.ClusterRoleBinding]("role_binding.yaml")
	Expect(crb.RoleRef.Name).To(Equal(cr.Name), "role_binding.yaml binds role.yaml")
	role := loadRBAC[rbacv1.Role]("leader_election_role.yaml")
	Expect(role.Kind).To(Equal("Role"))
	rb := loadRBAC[rbacv1.RoleBinding]("leader_election_role_binding.yaml")
	Expect(rb.RoleRef.Name).To(Equal(role.Name), "leader_election_role_binding.yaml binds leader_election_role.yaml")

	if mutate != nil {
		mutate(cr)
	}
	cr.Name = uniqueName(cr.Name)
	crb.Name = uniqueName(crb.Name)
	crb.RoleRef.Name = cr.Name
	role.Name, role.Namespace = uniqueName(role.Name), ns
	rb.Name, rb.Namespace = uniqueName(rb.Name), ns
	rb.RoleRef.Name = role.Name
	for _, subjects := range [][]rbacv1.Subject{crb.Subjects, rb.Subjects} {
		Expect(subjects).To(HaveLen(1))
		Expect(subjects[0].Kind).To(Equal(rbacv1.ServiceAccountKind))
		subjects[0].Name, subjects[0].Namespace = saName, ns
	}
	objs.create(ctx, cr)
	objs.create(ctx, crb)
	objs.create(ctx, role)
	objs.create(ctx, rb)

	// envtest authenticates users with client certificates; a ServiceAccount
	// subject matches the user name system:serviceaccount:<ns>:<name>.
	user, err := testEnv.AddUser(envtest.User{Name: "system:serviceaccount:" + ns + ":" + saName}, cfg)
	Expect(err).NotTo(HaveOccurred())
	return user.Config()
}

// eventsAbout lists the Events of the VolumeAttachment vaName.
func eventsAbout(ctx context.Context, vaName string) []eventsv1.Event {
	GinkgoHelper()
	list := &eventsv1.EventList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace("default"))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "VolumeAttachment" && e.Regarding.Name == vaName {
			out = append(out, e)
		}
	}
	return out
}

var _ = Describe("RBAC", func() {
	ctx := context.Background()
	objs := specObjects()

	// userClient is a client of the attacher's user; it waits until the API
	// server's authorizer has seen the bindings.
	userClient := func(restConfig *rest.Config) client.Client {
		GinkgoHelper()
		c, err := client.New(restConfig, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() error {
			return c.List(ctx, &storagev1.VolumeAttachmentList{}, client.Limit(1))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
		return c
	}

	It("attaches, detaches and releases the PV with exactly the rights of config/rbac", func() {
		const driverName = "rbac.csi.test"
		restConfig := attacherRBAC(ctx, objs, "csi-attacher-rbac-test", nil)
		uc := userClient(restConfig)

		node := uniqueName("node")
		nodeID := "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
		secretName := uniqueName("secret")
		handle := uniqueName("vol")
		pv := newPV(uniqueName("pv"), driverName, handle)
		pv.Spec.CSI.ControllerPublishSecretRef = &corev1.SecretReference{Namespace: "default", Name: secretName}
		objs.create(ctx, pv)

		// The API server enforces RBAC: the user is refused what the rules
		// do not grant, and given what they do.
		Expect(apierrors.IsForbidden(uc.List(ctx, &corev1.SecretList{}, client.InNamespace("default")))).
			To(BeTrue(), "Secrets are read one by one, never listed")
		err := uc.Delete(ctx, pv.DeepCopy())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "PersistentVolumes are not deleted: %v", err)
		err = uc.Create(ctx, newVA(uniqueName("va"), driverName, node, pv.Name))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "VolumeAttachments are not created: %v", err)
		err = uc.Get(ctx, client.ObjectKey{Namespace: "default", Name: secretName}, &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Secret may be read: %v", err)

		logger, logs := bufferLogger()
		a := startAttacher(fake.DefaultConfig(driverName), attacherOptions{restConfig: restConfig, logger: logger})
		DeferCleanup(a.stop)

		// The Secret does not exist yet: a Warning Event (events rights) and
		// attachError (status rights) say so.
		va := newVA(uniqueName("va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		failed := expectAttachError(ctx, va.Name, `failed to load secret "default/`+secretName+`"`)
		Expect(failed.Status.AttachError.Message).NotTo(ContainSubstring("forbidden"))
		expectWarningEvent(ctx, va.Name, "AttachFailed", secretName)

		objs.create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: secretName},
			Data:       map[string][]byte{"password": []byte("rbac-pw")},
		})
		attached := expectAttached(ctx, va.Name)
		finalizer := volume.FinalizerName(driverName)
		Expect(attached.Finalizers).To(ConsistOf(finalizer))
		Expect(attached.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, nodeID))
		Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}))
		calls := callsFor(a.driver, fake.MethodPublish, handle)
		Expect(calls).NotTo(BeEmpty())
		Expect(calls[len(calls)-1].Secrets).To(Equal(map[string]string{"password": "rbac-pw"}))
		got, err := getPV(ctx, pv.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Finalizers).To(ConsistOf(finalizer))
		Eventually(func() []eventsv1.Event { return eventsAbout(ctx, va.Name) }).
			WithTimeout(eventually).WithPolling(pollInterval).
			Should(ContainElement(And(
				HaveField("Type", corev1.EventTypeNormal),
				HaveField("Reason", "Attached"),
			)), "Normal Event for the attach after the failures")

		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.Published(handle)).To(BeEmpty())
		unpublishes := callsFor(a.driver, fake.MethodUnpublish, handle)
		Expect(unpublishes).To(HaveLen(1))
		Expect(unpublishes[0].Secrets).To(Equal(map[string]string{"password": "rbac-pw"}))

		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		expectGone(ctx, pv)

		Expect(logs.String()).NotTo(BeEmpty())
		Expect(logs.String()).NotTo(ContainSubstring("forbidden"), "no request of the attacher was refused")
	})

	It("allows the Secret watch only with the optional secret_watch_role.yaml", func() {
		const saName = "csi-attacher-rbac-secretwatch"
		uc := userClient(attacherRBAC(ctx, objs, saName, nil))
		allowed, err := secretWatchPlanned(ctx, uc)
		Expect(err).NotTo(HaveOccurred())
		Expect(allowed).To(BeFalse(), "config/rbac grants get on secrets, not list and watch")

		cr := loadRBAC[rbacv1.ClusterRole]("secret_watch_role.yaml")
		crb := loadRBAC[rbacv1.ClusterRoleBinding]("secret_watch_role_binding.yaml")
		Expect(crb.RoleRef.Name).To(Equal(cr.Name))
		cr.Name = uniqueName(cr.Name)
		crb.Name, crb.RoleRef.Name = uniqueName(crb.Name), cr.Name
		Expect(crb.Subjects).To(HaveLen(1))
		crb.Subjects[0].Name, crb.Subjects[0].Namespace = saName, "default"
		objs.create(ctx, cr)
		objs.create(ctx, crb)
		Eventually(func(g Gomega) {
			allowed, err := secretWatchPlanned(ctx, uc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(allowed).To(BeTrue())
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())
	})

	It("reports a missing patch right on volumeattachments/status instead of stalling silently", func() {
		const driverName = "rbac-nostatus.csi.test"
		restConfig := attacherRBAC(ctx, objs, "csi-attacher-rbac-nostatus", func(cr *rbacv1.ClusterRole) {
			removed := false
			cr.Rules = slices.DeleteFunc(cr.Rules, func(r rbacv1.PolicyRule) bool {
				if slices.Contains(r.Resources, "volumeattachments/status") {
					Expect(r.Resources).To(Equal([]string{"volumeattachments/status"}))
					Expect(r.Verbs).To(Equal([]string{"patch"}))
					removed = true
					return true
				}
				return false
			})
			Expect(removed).To(BeTrue(), "role.yaml grants patch on volumeattachments/status")
		})
		uc := userClient(restConfig)

		node := uniqueName("node")
		nodeID := "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))
		handle := uniqueName("vol")
		pv := newPV(uniqueName("pv"), driverName, handle)
		objs.create(ctx, pv)
		va := newVA(uniqueName("va"), driverName, node, pv.Name)
		objs.create(ctx, va)

		err := uc.Status().Patch(ctx, va.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"status":{"attached":true}}`)))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "the user may not patch the status: %v", err)

		logger, logs := bufferLogger()
		a := startAttacher(fake.DefaultConfig(driverName), attacherOptions{restConfig: restConfig, logger: logger})
		DeferCleanup(a.stop)

		// Everything before the status write works: the finalizers and the
		// publish.
		finalizer := volume.FinalizerName(driverName)
		Eventually(func(g Gomega) {
			g.Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}))
			got, err := getVA(ctx, va.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Finalizers).To(ConsistOf(finalizer))
			g.Expect(got.Annotations).To(HaveKeyWithValue(volume.NodeIDAnnotation, nodeID))
			gotPV, err := getPV(ctx, pv.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(gotPV.Finalizers).To(ConsistOf(finalizer))
		}).WithTimeout(eventually).WithPolling(pollInterval).Should(Succeed())

		// The status write is refused: users see it in a Warning Event that
		// names the refusal and the resource, since the status cannot carry it.
		expectWarningEvent(ctx, va.Name, "AttachFailed", "forbidden")
		expectWarningEvent(ctx, va.Name, "AttachFailed", "volumeattachments/status")
		Eventually(logs.String).WithTimeout(eventually).WithPolling(pollInterval).
			Should(And(ContainSubstring("forbidden"), ContainSubstring("volumeattachments/status")), "the reconcile error is logged")

		got, err := getVA(ctx, va.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Status.Attached).To(BeFalse())
		Expect(got.Status.AttachError).To(BeNil(), "writing attachError is refused too")

		// And the attacher keeps retrying rather than giving up.
		n := a.driver.CallCount(fake.MethodPublish, handle)
		Eventually(func() int { return a.driver.CallCount(fake.MethodPublish, handle) }).
			WithTimeout(eventually).WithPolling(pollInterval).Should(BeNumerically(">", n))
		Expect(a.driver.Published(handle)).To(Equal([]string{nodeID}), "retries publish to the same node only")

		// Detach needs no status write once our finalizer is the last one.
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		expectGone(ctx, va)
		Expect(a.driver.Published(handle)).To(BeEmpty())
	})
})

// secretWatchPlanned is the plan's Secret watch for a driver that
// publishes, with the rights of the user of c, as main.go decides it.
func secretWatchPlanned(ctx context.Context, c client.Client) (bool, error) {
	caps := csi.Capabilities{ControllerService: true, PublishUnpublish: true}
	plan := controllers.NewPlan(caps, controllers.ReviewGrants(ctx, rights.ClientReviewer(c), caps))
	return plan.SecretWatch, plan.SecretWatchError()
}
