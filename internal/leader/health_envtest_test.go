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
	"k8s.io/client-go/tools/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestLeaderThatCannotRenew runs client-go's LeaderElector, as
// controller-runtime's Manager does, on a Lock against a real API server,
// then takes away the leader's right to write the Lease: the elector stops
// leading but (as a wedged process would) the replica lives on, and Check
// turns to an error once the lease duration plus the grace have passed
// since the last renewal, not before.
func TestLeaderThatCannotRenew(t *testing.T) {
	g := NewWithT(t)
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(admin)

	const user, ns, name = "leader", "default", "test-lease"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}}
	_, err = cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	u, err := env.AddUser(envtest.User{Name: user}, nil)
	g.Expect(err).NotTo(HaveOccurred())

	const (
		leaseDuration = 2 * time.Second
		renewDeadline = 1500 * time.Millisecond
		retryPeriod   = 250 * time.Millisecond
		grace         = time.Second
	)
	lock, err := NewLock(ctx, Options{Config: u.Config(), Namespace: ns, Name: name, RenewDeadline: renewDeadline,
		LeaseDuration: leaseDuration, Grace: grace})
	g.Expect(err).NotTo(HaveOccurred())
	defer lock.Shutdown()
	started, stopped := make(chan struct{}), make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, Name: name, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(started) },
			OnStoppedLeading: func() { close(stopped) },
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lock.Check(nil)).To(Succeed(), "not leading yet")
	go le.Run(ctx)
	g.Eventually(started).WithTimeout(30 * time.Second).Should(BeClosed())

	// Renewing: healthy for longer than lease duration plus grace.
	g.Consistently(func() error { return lock.Check(nil) }).
		WithTimeout(leaseDuration + grace + time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	// The leader loses the right to write its Lease.
	g.Expect(cs.RbacV1().RoleBindings(ns).Delete(ctx, user, metav1.DeleteOptions{})).To(Succeed())
	cut := time.Now()
	g.Eventually(stopped).WithTimeout(30*time.Second).Should(BeClosed(), "client-go gives up after the renew deadline")
	g.Eventually(func() error { return lock.Check(nil) }).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).
		Should(MatchError(ContainSubstring("failed to renew leadership on Lease default/test-lease")))
	unhealthyAfter := time.Since(cut)
	// The last renewal was at most one retry period (plus the jitter and a
	// slow request) before the cut.
	g.Expect(unhealthyAfter).To(BeNumerically(">=", leaseDuration+grace-2*retryPeriod),
		"not unhealthy before lease duration plus grace")
	g.Expect(unhealthyAfter).To(BeNumerically("<", leaseDuration+grace+5*time.Second))
	t.Logf("healthy while renewing; unhealthy %s after the leader lost its Lease rights (lease %s + grace %s)",
		unhealthyAfter.Round(10*time.Millisecond), leaseDuration, grace)
}
