package leader

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
)

// TestFenceClosesBeforeTheStandbyTakesOver runs two replicas, each with
// client-go's LeaderElector on a Lock against a real API server, then takes
// away the leader's right to write the Lease, as a partition would: the
// leader's fence closes FenceDelay after its last renewal, the standby takes
// over no sooner than the lease duration after it, and between the two lies
// at least the margin the timings give.
func TestFenceClosesBeforeTheStandbyTakesOver(t *testing.T) {
	g := NewWithT(t)
	api := startAPIServer(t, g)
	cs := api.cs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const ns, name = "default", "fence-lease"
	api.leaseRole(ctx, g, ns, "lease", true, "get", "list", "watch", "create", "update")

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
		config := api.user(ctx, g, ns, user, "lease")
		r := replica{fence: NewFence(retry, bound), started: make(chan struct{})}
		lock, err := NewLock(ctx, Options{Config: config, Namespace: ns, Name: name, RenewDeadline: renew, Fence: r.fence})
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
	api := startAPIServer(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns, user = "default", "no-watch"
	api.leaseRole(ctx, g, ns, user, false, "get", "create", "update")
	config := api.user(ctx, g, ns, user, user)

	timedGet := func(l *Lock) time.Duration {
		start := time.Now()
		_, _, _ = l.Get(ctx)
		return time.Since(start)
	}
	for _, noWatch := range []bool{false, true} {
		l, err := NewLock(ctx, Options{Config: config, Namespace: ns, Name: fmt.Sprintf("no-watch-%t", noWatch), RenewDeadline: 2 * time.Second, NoWatch: noWatch})
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

// TestLeaseWatchLasts: the Lease watch is not cut by the request timeout
// the elector's reads and writes have (half the renew deadline). It was:
// every watch ended after a second here (5 s at the defaults) and started
// again, and under load a standby's first list did not complete in time,
// so its first read waited for a sync that kept failing and it took over
// late.
func TestLeaseWatchLasts(t *testing.T) {
	g := NewWithT(t)
	api := startAPIServer(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	config := rest.CopyConfig(api.env.Config)
	var watches atomic.Int32
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(req.URL.Path, "/leases") && req.URL.Query().Get("watch") == "true" {
				watches.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	const renew = 2 * time.Second
	_, err := NewLock(ctx, Options{Config: config, Namespace: "default", Name: "watch-lasts", RenewDeadline: renew})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(watches.Load).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))
	// Three times the request timeout (renew/2).
	g.Consistently(watches.Load).WithTimeout(3*time.Second).Should(BeNumerically("==", 1), "one watch, never cut")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
