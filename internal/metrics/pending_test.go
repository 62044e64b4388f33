package metrics

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// aged builds a VolumeAttachment of the given state created created ago
// and, when deleted is not zero, deleted deleted ago, both before now.
func aged(now time.Time, created, deleted time.Duration, finalizers []string, attached, attachErr, detachErr bool) storagev1.VolumeAttachment {
	v := va(false, finalizers, attached, attachErr, detachErr)
	v.CreationTimestamp = metav1.NewTime(now.Add(-created))
	if deleted != 0 {
		t := metav1.NewTime(now.Add(-deleted))
		v.DeletionTimestamp = &t
	}
	return *v
}

func TestTally(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	ours := []string{testFinalizer}
	other := []string{"example.com/other"}
	tests := []struct {
		name string
		vas  []storagev1.VolumeAttachment
		want Snapshot
	}{
		{name: "none", want: Snapshot{}},
		{
			name: "attached only: nothing pending, however old",
			vas:  []storagev1.VolumeAttachment{aged(now, 48*time.Hour, 0, ours, true, false, false)},
			want: Snapshot{Attached: 1},
		},
		{
			// The attachment no error rate catches: tried once, failed
			// for good, never retried.
			name: "one attach failed once, long ago: its age since creation",
			vas: []storagev1.VolumeAttachment{
				aged(now, 48*time.Hour, 0, ours, true, false, false),
				aged(now, 2*time.Hour, 0, ours, false, true, false),
			},
			want: Snapshot{Attached: 1, Failed: 1, OldestAttach: 2 * time.Hour},
		},
		{
			name: "the oldest of failing and waiting attaches",
			vas: []storagev1.VolumeAttachment{
				aged(now, 5*time.Minute, 0, ours, false, true, false),
				aged(now, 20*time.Minute, 0, nil, false, false, false),
				aged(now, time.Minute, 0, ours, false, false, false),
			},
			want: Snapshot{Attaching: 2, Failed: 1, OldestAttach: 20 * time.Minute},
		},
		{
			name: "detach: age since deletion, not since creation",
			vas: []storagev1.VolumeAttachment{
				aged(now, 48*time.Hour, 30*time.Minute, ours, true, false, false),
				aged(now, time.Hour, 10*time.Minute, ours, true, false, true),
			},
			want: Snapshot{Detaching: 1, Failed: 1, OldestDetach: 30 * time.Minute},
		},
		{
			name: "a deleted attachment that never attached is a pending detach, not attach",
			vas:  []storagev1.VolumeAttachment{aged(now, time.Hour, 2*time.Minute, ours, false, true, false)},
			want: Snapshot{Detaching: 1, OldestDetach: 2 * time.Minute},
		},
		{
			name: "detach done, other finalizers left: neither counted nor pending",
			vas:  []storagev1.VolumeAttachment{aged(now, time.Hour, 50*time.Minute, other, false, false, true)},
			want: Snapshot{},
		},
		{
			name: "timestamps after now (clock skew) count as 0",
			vas: []storagev1.VolumeAttachment{
				aged(now, -time.Minute, 0, ours, false, true, false),
				aged(now, time.Hour, -time.Minute, ours, true, false, false),
			},
			want: Snapshot{Failed: 1, Detaching: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(Tally(tt.vas, testFinalizer, now)).To(Equal(tt.want))
			a, b, c, d := Count(tt.vas, testFinalizer)
			g.Expect([]int{a, b, c, d}).To(Equal([]int{tt.want.Attached, tt.want.Attaching, tt.want.Detaching, tt.want.Failed}),
				"Count agrees with Tally")
		})
	}
}

func pendingGauges(g Gomega, reg *prometheus.Registry) map[string]float64 {
	return driverGauges(g, reg, OldestPendingSeconds, LabelOperation)
}

func TestSnapshotSource(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(pendingGauges(g, reg)).To(BeNil(), "no source: absent")

	snap, fail, calls := Snapshot{Attached: 2, Failed: 1, OldestAttach: 90 * time.Second, OldestDetach: 1500 * time.Millisecond}, error(nil), 0
	m.SetSnapshotSource(func() (Snapshot, error) { calls++; return snap, fail })
	g.Expect(pendingGauges(g, reg)).To(Equal(map[string]float64{OperationAttach: 90, OperationDetach: 1.5}))
	g.Expect(stateGauges(g, reg)).To(Equal(map[string]float64{
		StateAttached: 2, StateAttaching: 0, StateDetaching: 0, StateFailed: 1,
	}), "the state gauges come from the same snapshot")
	g.Expect(calls).To(Equal(2), "one call per scrape for both families")

	snap = Snapshot{}
	g.Expect(pendingGauges(g, reg)).To(Equal(map[string]float64{OperationAttach: 0, OperationDetach: 0}),
		"nothing pending is 0, not absent, so an alert on it resolves")

	fail = errors.New("cache not synced")
	g.Expect(pendingGauges(g, reg)).To(BeNil(), "an erroring source leaves the gauges out, not wrong")
	g.Expect(stateGauges(g, reg)).To(BeNil())

	fail = nil
	m.SetStateSource(func() (int, int, int, int, error) { return 1, 0, 0, 0, nil })
	g.Expect(stateGauges(g, reg)).To(HaveKeyWithValue(StateAttached, 1.0))
	g.Expect(pendingGauges(g, reg)).To(BeNil(), "a StateCounter knows no ages: not exported rather than 0")

	m.SetSnapshotSource(nil)
	g.Expect(stateGauges(g, reg)).To(BeNil())
	g.Expect(pendingGauges(g, reg)).To(BeNil())
}

// listReader is a client.Reader whose List returns items, and records
// whether the caller asked to skip the deep copies.
type listReader struct {
	client.Reader
	items    []storagev1.VolumeAttachment
	err      error
	noCopies bool
}

func (r *listReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if r.err != nil {
		return r.err
	}
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	r.noCopies = lo.UnsafeDisableDeepCopy != nil && *lo.UnsafeDisableDeepCopy
	list.(*storagev1.VolumeAttachmentList).Items = append([]storagev1.VolumeAttachment(nil), r.items...)
	return nil
}

func TestCacheSnapshot(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	now := time.Now()
	ours := []string{testFinalizer}
	theirs := aged(now, 10*time.Hour, 0, nil, false, true, false)
	theirs.Spec.Attacher = "other.example.com"
	mine := aged(now, time.Hour, 0, ours, false, true, false)
	mine.Spec.Attacher = testDriver
	r := &listReader{items: []storagev1.VolumeAttachment{theirs, mine}}

	s, err := CacheSnapshot(r, testDriver)()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.noCopies).To(BeTrue(), "a read-only pass skips the cache's deep copies")
	g.Expect(s.Failed).To(Equal(1), "only the driver's own attachments")
	g.Expect(s.OldestAttach).To(BeNumerically("~", time.Hour, time.Minute), "another driver's older one is not ours")

	r.err = errors.New("cache not started")
	_, err = CacheSnapshot(r, testDriver)()
	g.Expect(err).To(MatchError("cache not started"))
}

func TestSetMaxInflight(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(gather(g, reg)).NotTo(HaveKey(MaxInflight), "not exported before the bound is known")
	for _, tt := range []struct {
		set  int
		want float64
	}{{1000, 1000}, {500, 500}, {1, 1}, {1000, 1000}, {0, 0}, {-1, 0}} {
		m.SetMaxInflight(tt.set)
		g.Expect(gaugeValue(g, reg, MaxInflight)).To(Equal(tt.want), "set %d", tt.set)
	}
}

func TestSetBuildInfo(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(gather(g, reg)).NotTo(HaveKey(BuildInfo), "not exported before it is set")

	m.SetBuildInfo("v1.2.3", "0123abc", "2026-01-02T03:04:05Z")
	s := series(g, reg, BuildInfo, nil)
	g.Expect(s.GetGauge().GetValue()).To(Equal(1.0))
	g.Expect(labels(s)).To(Equal(map[string]string{
		LabelDriverName: testDriver, LabelVersion: "v1.2.3", LabelCommit: "0123abc",
		LabelBuildDate: "2026-01-02T03:04:05Z", LabelGoVersion: runtime.Version(),
	}))

	m.SetBuildInfo("devel", "", "")
	s = series(g, reg, BuildInfo, nil) // one series: the first one is replaced
	g.Expect(labels(s)).To(HaveKeyWithValue(LabelVersion, "devel"))
	g.Expect(labels(s)).To(HaveKeyWithValue(LabelCommit, "unknown"))
	g.Expect(labels(s)).To(HaveKeyWithValue(LabelBuildDate, "unknown"))
}
