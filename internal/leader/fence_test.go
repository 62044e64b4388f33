package leader

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// fakeClock is an injectable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock            { return &fakeClock{t: time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)} }
func fenceAt(c *fakeClock, retry, bound time.Duration) *Fence {
	f := NewFence(retry, bound)
	f.now = c.now
	return f
}

func TestFenceDelayAndMargin(t *testing.T) {
	g := NewWithT(t)
	g.Expect(FenceDelay(5 * time.Second)).To(Equal(7500 * time.Millisecond))
	g.Expect(MarginOf(15*time.Second, 5*time.Second)).To(Equal(7500*time.Millisecond), "the default timings leave 7.5 s")
	g.Expect(MarginOf(137*time.Second, 26*time.Second)).To(Equal(98 * time.Second))
}

// TestFenceClosesWhenRenewalIsOverdue: the leader may start calls while its
// renewals are on time, and none once the last successful renewal was sent
// more than FenceDelay ago, until the next one succeeds.
func TestFenceClosesWhenRenewalIsOverdue(t *testing.T) {
	g := NewWithT(t)
	clock := newFakeClock()
	f := fenceAt(clock, 5*time.Second, time.Minute)
	g.Expect(f.Open()).To(MatchError(ContainSubstring("does not hold the Lease")), "closed before the first acquisition")

	f.renew(clock.now())
	g.Expect(f.Open()).To(Succeed())
	clock.step(5 * time.Second)
	f.renew(clock.now())
	clock.step(7500 * time.Millisecond)
	g.Expect(f.Open()).To(Succeed(), "at FenceDelay exactly, still open")
	clock.step(time.Millisecond)
	err := f.Open()
	g.Expect(errors.Is(err, ErrFenced)).To(BeTrue())
	g.Expect(err).To(MatchError(ContainSubstring("last renewed 7.501s ago, more than 7.5s")))

	// A renewal that was sent 2 s ago and has just succeeded reopens it.
	f.renew(clock.now().Add(-2 * time.Second))
	g.Expect(f.Open()).To(Succeed())
	// An older renewal reported late does not move it back.
	f.renew(clock.now().Add(-time.Minute))
	clock.step(5 * time.Second)
	g.Expect(f.Open()).To(Succeed())

	f.stop()
	g.Expect(f.Open()).To(MatchError(ContainSubstring("does not hold the Lease")), "released, or another holder seen")
}

// TestFenceWaitEndsAtTheNextRenewal: a call that finds the fence closed
// starts as soon as a renewal succeeds, and gives up when the replica stops.
func TestFenceWaitEndsAtTheNextRenewal(t *testing.T) {
	g := NewWithT(t)
	clock := newFakeClock()
	f := fenceAt(clock, 5*time.Second, time.Minute)
	f.renew(clock.now())
	g.Expect(f.Wait(context.Background(), nil)).To(Succeed(), "open: no wait")

	clock.step(10 * time.Second)
	done := make(chan error, 1)
	go func() { done <- f.Wait(context.Background(), nil) }()
	g.Consistently(done).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	f.renew(clock.now())
	g.Eventually(done).Should(Receive(BeNil()))

	clock.step(10 * time.Second)
	stop := make(chan struct{})
	go func() { done <- f.Wait(context.Background(), stop) }()
	g.Consistently(done).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	close(stop)
	g.Eventually(done).Should(Receive(MatchError(ErrFenced)))
}

// TestFenceHoldAfterAnUncleanTakeover: operations known before the
// takeover wait until FenceDelay plus the call bound after the old
// holder's last renewal; those that appeared after it do not wait.
func TestFenceHoldAfterAnUncleanTakeover(t *testing.T) {
	g := NewWithT(t)
	clock := newFakeClock()
	f := fenceAt(clock, 5*time.Second, time.Minute)
	g.Expect(f.Hold(time.Time{}, false)).To(BeZero(), "no takeover: nothing held")

	lastSeen := clock.now()
	clock.step(15 * time.Second)
	f.tookOver(clock.now(), lastSeen)
	f.renew(clock.now())
	before, after := clock.now().Add(-time.Second), clock.now().Add(time.Second)
	g.Expect(f.Hold(before, true)).To(Equal(52500*time.Millisecond), "7.5 s + 60 s after the last renewal, 15 s of it gone")
	g.Expect(f.Hold(time.Time{}, false)).To(Equal(52500*time.Millisecond), "unknown counts as before")
	g.Expect(f.Hold(after, true)).To(BeZero(), "appeared after the takeover")
	clock.step(52500 * time.Millisecond)
	g.Expect(f.Hold(before, true)).To(BeZero())
}

// TestLockTellsTheFence: the lock reports renewals (sent at their renew
// time), releases, other holders and whether an acquisition took over a
// Lease that expired in another holder's name.
func TestLockTellsTheFence(t *testing.T) {
	const retry, bound = 5 * time.Second, time.Minute
	acquire := func(l *Lock, clock *fakeClock) error {
		at := metav1.NewTime(clock.now())
		return l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: self, LeaseDurationSeconds: 15, AcquireTime: at, RenewTime: at})
	}
	t.Run("unclean takeover", func(t *testing.T) {
		g := NewWithT(t)
		clock := newFakeClock()
		inner := &recordLock{}
		l := newLock(inner)
		l.now = clock.now
		l.fence = fenceAt(clock, retry, bound)
		renewed := metav1.NewTime(clock.now())
		inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 15, AcquireTime: renewed, RenewTime: renewed}
		_, _, err := l.Get(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		firstSeen := clock.now()
		clock.step(15 * time.Second)
		g.Expect(acquire(l, clock)).To(Succeed())
		g.Expect(l.fence.Open()).To(Succeed())
		g.Expect(l.fence.Hold(clock.now().Add(-time.Second), true)).To(Equal(firstSeen.Add(FenceDelay(retry) + bound).Sub(clock.now())))
	})
	t.Run("clean hand-over", func(t *testing.T) {
		g := NewWithT(t)
		clock := newFakeClock()
		inner := &recordLock{}
		l := newLock(inner)
		l.now = clock.now
		l.fence = fenceAt(clock, retry, bound)
		released := metav1.NewTime(clock.now())
		inner.rec = resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, AcquireTime: released, RenewTime: released}
		_, _, err := l.Get(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(acquire(l, clock)).To(Succeed())
		g.Expect(l.fence.Hold(time.Time{}, false)).To(BeZero(), "a released Lease holds nothing")
	})
	t.Run("failed write, release, other holder", func(t *testing.T) {
		g := NewWithT(t)
		clock := newFakeClock()
		inner := &failingLock{recordLock: &recordLock{}}
		l := newLock(inner)
		l.now = clock.now
		l.fence = fenceAt(clock, retry, bound)
		inner.fail = true
		g.Expect(acquire(l, clock)).NotTo(Succeed())
		g.Expect(l.fence.Open()).NotTo(Succeed(), "a failed write is no renewal")
		inner.fail = false
		g.Expect(acquire(l, clock)).To(Succeed())
		g.Expect(l.fence.Open()).To(Succeed())
		g.Expect(l.Update(context.Background(), resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1})).To(Succeed())
		g.Expect(l.fence.Open()).NotTo(Succeed(), "released")
		g.Expect(acquire(l, clock)).To(Succeed())
		now := metav1.NewTime(clock.now())
		inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now}
		_, _, err := l.Get(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(l.fence.Open()).NotTo(Succeed(), "another replica holds the Lease")
	})
}

// failingLock fails its writes while fail is set.
type failingLock struct {
	*recordLock
	fail bool
}

func (f *failingLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if f.fail {
		return errors.New("the API server is unreachable")
	}
	return f.recordLock.Update(ctx, ler)
}
