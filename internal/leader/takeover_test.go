package leader

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// holder plays another replica that leads: it renews the record of inner
// every period and the watch of l sees each renewal, until stop.
type holder struct {
	inner *recordLock
	l     *Lock
	mu    sync.Mutex
	last  time.Time
}

func (h *holder) renew(seconds int) {
	now := metav1.Now()
	h.inner.mu.Lock()
	h.inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: seconds, AcquireTime: now, RenewTime: now}
	spec := resourcelock.LeaderElectionRecordToLeaseSpec(&h.inner.rec)
	h.inner.mu.Unlock()
	h.l.observe(&coordinationv1.Lease{Spec: spec})
	h.mu.Lock()
	h.last = time.Now()
	h.mu.Unlock()
}

func (h *holder) lastRenewal() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// runElector runs client-go's LeaderElector, as controller-runtime's
// Manager does, on l and returns a channel closed when it leads.
func runElector(t *testing.T, ctx context.Context, l *Lock, lease, renew, retry time.Duration) <-chan struct{} {
	t.Helper()
	started := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: l, Name: "test", LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
		Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) { close(started) }, OnStoppedLeading: func() {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go le.Run(ctx)
	return started
}

// TestStandbyTakesOverOneLeaseDurationAfterTheLastRenewal: a standby whose
// watch saw the holder's last renewal takes the Lease one lease duration
// after it, never sooner, and not a lease duration later (client-go counts
// the lease from its own read, which a waiting Get would delay).
func TestStandbyTakesOverOneLeaseDurationAfterTheLastRenewal(t *testing.T) {
	g := NewWithT(t)
	const lease, renew, retry = 2 * time.Second, 1500 * time.Millisecond, 500 * time.Millisecond
	inner := &recordLock{}
	l := newLock(inner)
	h := &holder{inner: inner, l: l}
	h.renew(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := runElector(t, ctx, l, lease, renew, retry)

	// While the holder renews, the standby never takes over.
	renewing, stopRenewing := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-renewing.Done():
				return
			case <-time.After(retry):
				h.renew(2)
			}
		}
	}()
	g.Consistently(started).WithTimeout(2 * lease).ShouldNot(BeClosed())
	stopRenewing()
	time.Sleep(50 * time.Millisecond) // let a renewal in progress finish
	last := h.lastRenewal()

	g.Eventually(started).WithTimeout(4 * lease).Should(BeClosed())
	took := time.Since(last)
	t.Logf("took over %s after the last renewal (lease %s)", took.Round(time.Millisecond), lease)
	g.Expect(took).To(BeNumerically(">=", lease), "never before the lease has run out")
	g.Expect(took).To(BeNumerically("<", lease+retry), "within a retry period of the expiry, not a lease later")
	g.Expect(inner.rec.HolderIdentity).To(Equal(self))
}

// TestStandbyWithoutWatchTakesOverAsClientGoWould: without the watch every
// read is a plain GET and the lease is counted from the first read that
// returned the last renewal, as client-go's own lock counts it.
func TestStandbyWithoutWatchTakesOverAsClientGoWould(t *testing.T) {
	g := NewWithT(t)
	const lease, renew, retry = 2 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond
	inner := &recordLock{}
	l := newLock(inner) // never observes: no watch
	now := metav1.Now()
	inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 2, AcquireTime: now, RenewTime: now}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	started := runElector(t, ctx, l, lease, renew, retry)
	g.Eventually(started).WithTimeout(4 * lease).Should(BeClosed())
	took := time.Since(began)
	g.Expect(took).To(BeNumerically(">=", lease))
	g.Expect(took).To(BeNumerically("<", lease+3*retry))
}

// TestGetOfAnExpiredLeaseAfterAWait: a Get that waited and returns a record
// whose lease has run out returns it with a duration that client-go, which
// took the time before the Get, finds expired; a valid lease is returned
// as read.
func TestGetOfAnExpiredLeaseAfterAWait(t *testing.T) {
	g := NewWithT(t)
	inner := &recordLock{}
	l := newLock(inner)
	clock := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }
	at := metav1.NewTime(clock)
	inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 15, AcquireTime: at, RenewTime: at}

	rec, _, err := l.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.LeaseDurationSeconds).To(Equal(15), "first seen now: valid")

	clock = clock.Add(14 * time.Second)
	rec, _, err = l.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.LeaseDurationSeconds).To(Equal(15), "14 s after it was first seen: still valid")

	start := clock.Add(time.Second)
	clock = start.Add(3500 * time.Millisecond) // the Get took 3.5 s
	rec, raw, err := l.measure(rec, mustRaw(g, inner), start)
	g.Expect(err).NotTo(HaveOccurred())
	// client-go: observed (≈ clock) + duration must be before its attempt began (≤ start).
	g.Expect(clock.Add(time.Duration(rec.LeaseDurationSeconds) * time.Second)).To(BeTemporally("<", start))
	g.Expect(raw).NotTo(Equal(mustRaw(g, inner)), "client-go notices the changed record")
}

func mustRaw(g Gomega, r *recordLock) []byte {
	_, raw, err := r.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	return raw
}
