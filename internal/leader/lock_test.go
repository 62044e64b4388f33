package leader

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
)

const self = "me"

// recordLock is a resourcelock.Interface that keeps the record in memory.
type recordLock struct {
	mu      sync.Mutex
	rec     resourcelock.LeaderElectionRecord
	written []resourcelock.LeaderElectionRecord
}

func (r *recordLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// As resourcelock.LeaseLock does: the record read back from the Lease.
	spec := resourcelock.LeaderElectionRecordToLeaseSpec(&r.rec)
	rec := resourcelock.LeaseSpecToLeaderElectionRecord(&spec)
	raw, err := json.Marshal(*rec)
	return rec, raw, err
}
func (r *recordLock) Create(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec = ler
	r.written = append(r.written, ler)
	return nil
}
func (r *recordLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return r.Create(ctx, ler)
}
func (r *recordLock) RecordEvent(string) {}
func (r *recordLock) Identity() string   { return self }
func (r *recordLock) Describe() string   { return "default/test" }

func lease(holder string, seconds int32) *coordinationv1.Lease {
	now := metav1.NowMicro()
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(seconds),
		AcquireTime: &now, RenewTime: &now}}
}

// getReturns runs Get in the background and returns a channel closed when
// it returns.
func getReturns(l *Lock, ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = l.Get(ctx)
	}()
	return done
}

func TestGetDoesNotWait(t *testing.T) {
	for name, observe := range map[string]func(*Lock){
		"Lease unknown (no watch, or no Lease)": func(*Lock) {},
		"held by this replica":                  func(l *Lock) { l.observe(lease(self, 15)) },
		"released":                              func(l *Lock) { l.observe(lease("", 1)) },
		"deleted":                               func(l *Lock) { l.observe(lease("other", 15)); l.forget() },
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			l := newLock(&recordLock{})
			observe(l)
			g.Eventually(getReturns(l, context.Background())).WithTimeout(time.Second).Should(BeClosed())
			g.Expect(l.Waiting()).To(BeFalse())
		})
	}
}

func TestStandbyGetWaitsForTheRelease(t *testing.T) {
	g := NewWithT(t)
	l := newLock(&recordLock{})
	l.observe(lease("other", 15))
	done := getReturns(l, context.Background())
	g.Eventually(l.Waiting).Should(BeTrue())
	// A renewal by the leader: still held, keep waiting.
	l.observe(lease("other", 15))
	g.Consistently(done).WithTimeout(200 * time.Millisecond).ShouldNot(BeClosed())
	released := time.Now()
	l.observe(lease("", 1))
	// At once: well under the renew period (a loaded machine may delay the
	// goroutines a little).
	g.Eventually(done).WithTimeout(time.Second).Should(BeClosed())
	g.Expect(time.Since(released)).To(BeNumerically("<", 500*time.Millisecond), "the release ends the wait at once")
	g.Expect(l.Waiting()).To(BeFalse())
}

func TestStandbyGetWaitsUntilTheLeaseExpires(t *testing.T) {
	g := NewWithT(t)
	l := newLock(&recordLock{})
	l.observe(lease("other", 1))
	done := getReturns(l, context.Background())
	// Renewals keep it waiting ...
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		l.observe(lease("other", 1))
	}
	last := time.Now()
	g.Expect(done).NotTo(BeClosed())
	// ... until the lease runs out, one lease duration after the last
	// renewal the watch saw.
	g.Eventually(done).WithTimeout(5 * time.Second).Should(BeClosed())
	g.Expect(time.Since(last)).To(BeNumerically(">=", 950*time.Millisecond))
	g.Expect(time.Since(last)).To(BeNumerically("<", 1500*time.Millisecond))
}

func TestStandbyGetEndsWithItsContext(t *testing.T) {
	g := NewWithT(t)
	l := newLock(&recordLock{})
	l.observe(lease("other", 15))
	ctx, cancel := context.WithCancel(context.Background())
	done := getReturns(l, ctx)
	g.Eventually(l.Waiting).Should(BeTrue())
	cancel()
	g.Eventually(done).WithTimeout(time.Second).Should(BeClosed())
}

func TestWritesStampTheRealAcquireTime(t *testing.T) {
	g := NewWithT(t)
	inner := &recordLock{}
	l := newLock(inner)
	clock := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }
	ctx := context.Background()

	// client-go stamped the attempt when it began, before Get waited a
	// minute for the release.
	asked := metav1.NewTime(clock.Add(-time.Minute))
	g.Expect(l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: self, AcquireTime: asked, RenewTime: asked})).To(Succeed())
	g.Expect(inner.rec.AcquireTime.Time).To(Equal(clock))
	g.Expect(inner.rec.RenewTime.Time).To(Equal(clock))

	// A renewal carries the acquire time client-go remembers: the real one
	// is written.
	clock = clock.Add(5 * time.Second)
	renew := metav1.NewTime(clock)
	g.Expect(l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: self, AcquireTime: asked, RenewTime: renew})).To(Succeed())
	g.Expect(inner.rec.AcquireTime.Time).To(Equal(clock.Add(-5 * time.Second)))
	g.Expect(inner.rec.RenewTime.Time).To(Equal(clock))

	// A release (no holder) is written as client-go built it.
	rel := resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, AcquireTime: renew, RenewTime: renew}
	g.Expect(l.Update(ctx, rel)).To(Succeed())
	g.Expect(inner.rec).To(Equal(rel))
}

// TestStandbyGetDoesNotWaitOnAWatchThatIsBehind: once a read has returned a
// record the watch has not delivered, Get does not wait on the watch's older
// record, which would never end if the watch stalled.
func TestStandbyGetDoesNotWaitOnAWatchThatIsBehind(t *testing.T) {
	g := NewWithT(t)
	inner := &recordLock{}
	l := newLock(inner)
	l.observe(lease("other", 15))
	now := metav1.Now()
	inner.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 15,
		AcquireTime: metav1.NewTime(now.Add(-time.Hour)), RenewTime: metav1.NewTime(now.Add(time.Hour))}
	// The first read waits on the watch ...
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, _ = l.Get(ctx)
	// ... and returns the newer record; the next read does not wait.
	g.Eventually(getReturns(l, context.Background())).WithTimeout(time.Second).Should(BeClosed())
}
