package leader

import (
	"context"
	"fmt"
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

// TestFenceClosesBeforeTheStandbyTakesOver runs two replicas, each with
// client-go's LeaderElector on a Lock against a real API server, then takes
// away the leader's right to write the Lease, as a partition would: the
// leader's fence closes FenceDelay after its last renewal, the standby takes
// over no sooner than the lease duration after it, and between the two lies
// at least the margin the timings give.
func TestFenceClosesBeforeTheStandbyTakesOver(t *testing.T) {
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

	const ns, name = "default", "fence-lease"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "lease", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}}
	_, err = cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	const (
		lease = 2 * time.Second
		renew = 1500 * time.Millisecond
		retry = 500 * time.Millisecond
		bound = 3 * time.Second
	)
	type replica struct {
		fence   *Fence
		started chan struct{}
	}
	run := func(user string) replica {
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "lease"}}
		_, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		u, err := env.AddUser(envtest.User{Name: user}, nil)
		g.Expect(err).NotTo(HaveOccurred())
		r := replica{fence: NewFence(retry, bound), started: make(chan struct{})}
		lock, err := NewLock(ctx, Options{Config: u.Config(), Namespace: ns, Name: name, RenewDeadline: renew, Fence: r.fence})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(lock.Shutdown)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: name, LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { close(r.started) },
				OnStoppedLeading: func() {},
			},
		})
		g.Expect(err).NotTo(HaveOccurred())
		go le.Run(ctx)
		return r
	}
	old := run("old")
	g.Eventually(old.started).WithTimeout(30 * time.Second).Should(BeClosed())
	g.Consistently(old.fence.Open).WithTimeout(2*lease).WithPolling(20*time.Millisecond).Should(Succeed(), "open while it renews")
	standby := run("standby")
	g.Consistently(standby.started).WithTimeout(lease).ShouldNot(BeClosed())

	// The leader loses the right to write its Lease.
	g.Expect(cs.RbacV1().RoleBindings(ns).Delete(ctx, "old", metav1.DeleteOptions{})).To(Succeed())
	cut := time.Now()
	g.Eventually(old.fence.Open).WithTimeout(10 * time.Second).WithPolling(10 * time.Millisecond).Should(MatchError(ErrFenced))
	old.fence.mu.Lock()
	fenced := old.fence.renewed.Add(FenceDelay(retry)) // the moment it closed
	old.fence.mu.Unlock()
	g.Eventually(standby.started).WithTimeout(10 * time.Second).Should(BeClosed())
	took := time.Now()
	g.Expect(old.fence.Open()).NotTo(Succeed())
	g.Expect(standby.fence.Open()).To(Succeed())

	t.Logf("fence closed %s after the cut, the standby took over %s after it (margin %s)",
		fenced.Sub(cut).Round(10*time.Millisecond), took.Sub(fenced).Round(10*time.Millisecond), MarginOf(lease, retry))
	g.Expect(fenced.Sub(cut)).To(BeNumerically("<=", FenceDelay(retry)+200*time.Millisecond), "the last renewal was before the cut")
	g.Expect(took.Sub(fenced)).To(BeNumerically(">=", MarginOf(lease, retry)), "the margin holds")
}

// TestLockWithoutListAndWatch: a service account with get, create and
// update on its Lease but neither list nor watch. The watch can never sync;
// only the first read may wait for it, so neither a renewal's slow path nor
// the release on SIGTERM spends the renew deadline waiting. With NoWatch
// (what main.go chooses when the rights check finds list and watch
// missing) no read waits at all.
func TestLockWithoutListAndWatch(t *testing.T) {
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
	const ns, user = "default", "no-watch"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
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

	timedGet := func(l *Lock) time.Duration {
		start := time.Now()
		_, _, _ = l.Get(ctx)
		return time.Since(start)
	}
	for _, noWatch := range []bool{false, true} {
		l, err := NewLock(ctx, Options{Config: u.Config(), Namespace: ns, Name: fmt.Sprintf("no-watch-%t", noWatch), RenewDeadline: 2 * time.Second, NoWatch: noWatch})
		g.Expect(err).NotTo(HaveOccurred())
		first := timedGet(l)
		if noWatch {
			g.Expect(first).To(BeNumerically("<", time.Second), "NoWatch: a plain GET")
		}
		for range 3 {
			g.Expect(timedGet(l)).To(BeNumerically("<", time.Second), "NoWatch=%t: no later read waits for the watch", noWatch)
		}
		l.Shutdown()
	}
}
