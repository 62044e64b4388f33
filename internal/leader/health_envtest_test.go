package leader

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
)

// TestLeaderThatCannotRenew runs client-go's LeaderElector, as
// controller-runtime's Manager does, on a Lock against a real API server,
// then takes away the leader's right to write the Lease: the elector stops
// leading but (as a wedged process would) the replica lives on, and Check
// turns to an error once the lease duration plus the grace have passed
// since the last renewal, not before.
func TestLeaderThatCannotRenew(t *testing.T) {
	g := NewWithT(t)
	api := startAPIServer(t, g)
	cs := api.cs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const user, ns, name = "leader", "default", "test-lease"
	api.leaseRole(ctx, g, ns, user, true, "get", "list", "watch", "create", "update")
	config := api.user(ctx, g, ns, user, user)

	const (
		leaseDuration = 2 * time.Second
		renewDeadline = 1500 * time.Millisecond
		retryPeriod   = 250 * time.Millisecond
		grace         = time.Second
	)
	lock, err := NewLock(ctx, Options{Config: config, Namespace: ns, Name: name, RenewDeadline: renewDeadline,
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
