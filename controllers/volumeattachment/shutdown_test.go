package volumeattachment

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// stubFence is a Fence that is open when told, and holds everything seen
// before takenAt for hold.
type stubFence struct {
	open    chan struct{}
	takenAt time.Time
	hold    time.Duration
}

func (f *stubFence) Wait(ctx context.Context, stop <-chan struct{}) error {
	select {
	case <-f.open:
		return nil
	case <-stop:
		return leader.ErrFenced
	}
}

func (f *stubFence) Hold(seen time.Time, known bool) time.Duration {
	if known && seen.After(f.takenAt) {
		return 0
	}
	return f.hold
}

// TestCallAllowedWaitsForTheFence: no call starts while the fence is
// closed; it starts once it opens, and a stop ends the wait as a shutdown.
func TestCallAllowedWaitsForTheFence(t *testing.T) {
	g := NewWithT(t)
	f := &stubFence{open: make(chan struct{})}
	parent, cancel := context.WithCancel(context.Background())
	ctx := withStop(parent, f)
	done := make(chan error, 1)
	go func() { done <- callAllowed(ctx) }()
	g.Consistently(done).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	close(f.open)
	g.Eventually(done).Should(Receive(BeNil()))

	f.open = make(chan struct{})
	go func() { done <- callAllowed(ctx) }()
	g.Consistently(done).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	cancel()
	g.Eventually(done).Should(Receive(MatchError(errShuttingDown)))

	g.Expect(callAllowed(withStop(context.Background(), nil))).To(Succeed(), "no fence without leader election")
}

// TestHeldAfterAnUncleanTakeover: only an operation in progress that this
// replica saw before the takeover waits.
func TestHeldAfterAnUncleanTakeover(t *testing.T) {
	takenAt := time.Now()
	const finalizer = "external-attacher/test"
	va := func(attached, deleting, withFinalizer bool) *storagev1.VolumeAttachment {
		v := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va", UID: "uid-1"}}
		v.Status.Attached = attached
		if deleting {
			v.DeletionTimestamp = &metav1.Time{Time: takenAt}
		}
		if withFinalizer {
			v.Finalizers = []string{finalizer}
		}
		return v
	}
	for _, tc := range []struct {
		name                      string
		attached, deleting, final bool
		seenOp                    string
		seenAt                    time.Time
		want                      time.Duration
	}{
		{name: "attach seen before the takeover", seenOp: "attach", seenAt: takenAt.Add(-time.Second), want: time.Minute},
		{name: "attach seen after the takeover", seenOp: "attach", seenAt: takenAt.Add(time.Second)},
		// The hook that notes a first sighting runs on its own informer
		// goroutine and may not have seen an object that just arrived: a
		// new attachment right after the takeover was held for seconds.
		{name: "attach of an unknown moment is looked at again shortly", want: sightingRecheck},
		{name: "attached, nothing in progress", attached: true},
		{name: "detach seen before the takeover", deleting: true, final: true, seenOp: "detach", seenAt: takenAt.Add(-time.Second), want: time.Minute},
		{name: "detach seen after the takeover", deleting: true, final: true, seenOp: "detach", seenAt: takenAt.Add(time.Second)},
		{name: "deleted without our finalizer", deleting: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &Reconciler{Fence: &stubFence{takenAt: takenAt, hold: time.Minute}, finalizer: finalizer}
			if tc.seenOp != "" {
				r.started.seen = map[string]seenAt{tc.seenOp + "/va": {uid: "uid-1", at: tc.seenAt}}
			}
			g.Expect(r.held(va(tc.attached, tc.deleting, tc.final))).To(Equal(tc.want))
		})
	}
	g := NewWithT(t)
	g.Expect((&Reconciler{}).held(va(false, false, false))).To(BeZero(), "no fence without leader election")
}

// TestStopChannelOfTheGate: the limiter's wait for a call slot ends with the
// controller, through the channel withStop keeps.
func TestStopChannelOfTheGate(t *testing.T) {
	g := NewWithT(t)
	parent, cancel := context.WithCancel(context.Background())
	ctx := withStop(parent, nil)
	stop := stopChannel(ctx)
	g.Expect(stop).NotTo(BeNil())
	g.Expect(stop).NotTo(BeClosed())
	cancel()
	g.Expect(stop).To(BeClosed())
	g.Expect(stopChannel(context.Background())).To(BeNil(), "outside a reconcile")
}
