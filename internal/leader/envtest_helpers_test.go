package leader

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// apiServer is a real kube-apiserver and etcd for one test, with an admin
// client; it is stopped when the test ends.
type apiServer struct {
	env *envtest.Environment
	cs  *kubernetes.Clientset
}

// startAPIServer starts envtest from $KUBEBUILDER_ASSETS, or from what
// hack/install-envtest.sh provides when the variable is unset (go test run
// by hand).
func startAPIServer(t *testing.T, g Gomega) apiServer {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		out, err := exec.Command("../../hack/install-envtest.sh").Output()
		g.Expect(err).NotTo(HaveOccurred(), "envtest needs kube-apiserver and etcd")
		assets = strings.TrimSpace(string(out))
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	admin, err := env.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	return apiServer{env: env, cs: kubernetes.NewForConfigOrDie(admin)}
}

// leaseRole creates the Role name in ns with leaseVerbs on Leases and, with
// events, create and patch on Events (what the elector records).
func (s apiServer) leaseRole(ctx context.Context, g Gomega, ns, name string, events bool, leaseVerbs ...string) {
	rules := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: leaseVerbs}}
	if events {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}})
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	_, err := s.cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
}

// user binds the Role role in ns to a new user of that name and returns
// the user's client configuration.
func (s apiServer) user(ctx context.Context, g Gomega, ns, user, role string) *rest.Config {
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role}}
	_, err := s.cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	u, err := s.env.AddUser(envtest.User{Name: user}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	return u.Config()
}
