package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	testDriver    = "csi.example.com"
	testFinalizer = "external-attacher/csi-example-com"
)

// registered returns a new Metrics registered with a new pedantic registry,
// which also checks that what is collected matches what is described.
func registered(g Gomega) (*Metrics, *prometheus.Registry) {
	m := New(testDriver)
	reg := prometheus.NewPedanticRegistry()
	g.Expect(m.Register(reg)).To(Succeed())
	return m, reg
}

// gather returns the families of reg by name.
func gather(g Gomega, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	mfs, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// series returns the only metric of family name whose labels include want.
func series(g Gomega, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	mf := gather(g, reg)[name]
	g.Expect(mf).NotTo(BeNil(), "family %s not exported", name)
	var found []*dto.Metric
	for _, m := range mf.GetMetric() {
		ls := labels(m)
		match := true
		for k, v := range want {
			if ls[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, m)
		}
	}
	g.Expect(found).To(HaveLen(1), "series %s%v", name, want)
	return found[0]
}

func counterValue(g Gomega, reg *prometheus.Registry, name string, want map[string]string) float64 {
	return series(g, reg, name, want).GetCounter().GetValue()
}

func gaugeValue(g Gomega, reg *prometheus.Registry, name string) float64 {
	return series(g, reg, name, nil).GetGauge().GetValue()
}

func TestDurationBuckets(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(DurationBuckets).To(ContainElements(0.05, 600.0))
	g.Expect(DurationBuckets[0]).To(Equal(0.05))
	g.Expect(DurationBuckets[len(DurationBuckets)-1]).To(Equal(600.0))
	g.Expect(len(DurationBuckets)).To(BeNumerically("~", 14, 2))
	for i := 1; i < len(DurationBuckets); i++ {
		ratio := DurationBuckets[i] / DurationBuckets[i-1]
		g.Expect(ratio).To(BeNumerically(">", 1), "bucket %d not increasing", i)
		g.Expect(ratio).To(BeNumerically("<=", 3), "bucket %d: step too large for a roughly exponential scale", i)
	}
}

func TestExportedFamilies(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	m.SetSnapshotSource(func() (Snapshot, error) { return Snapshot{}, nil })
	m.SetTrackedSource(func() map[string]int { return map[string]int{"freshness": 0, "locks": 0} })
	m.SetMaxInflight(8)
	m.SetBuildInfo("v1.2.3", "0123abc", "2026-01-02T03:04:05Z")
	mfs := gather(g, reg)

	tests := []struct {
		name    string
		typ     dto.MetricType
		series  int
		dynamic []string // label names besides driver_name
	}{
		{AttachDurationSeconds, dto.MetricType_HISTOGRAM, 1, nil},
		{DetachDurationSeconds, dto.MetricType_HISTOGRAM, 1, nil},
		// attach and detach, times the 16 non-OK codes and "none".
		{OperationErrorsTotal, dto.MetricType_COUNTER, 34, []string{LabelOperation, LabelGRPCCode}},
		{VolumeAttachments, dto.MetricType_GAUGE, 4, []string{LabelState}},
		{DriverReady, dto.MetricType_GAUGE, 1, nil},
		{Ready, dto.MetricType_GAUGE, 1, nil},
		{CSIConnectionUp, dto.MetricType_GAUGE, 1, nil},
		{DriverOutagesTotal, dto.MetricType_COUNTER, 1, nil},
		// Both kinds, pre-created.
		{VolumeDriftTotal, dto.MetricType_COUNTER, 2, []string{LabelKind}},
		// One series per map the source reports.
		{TrackedObjects, dto.MetricType_GAUGE, 2, []string{LabelMap}},
		{OldestPendingSeconds, dto.MetricType_GAUGE, 2, []string{LabelOperation}},
		{MaxInflight, dto.MetricType_GAUGE, 1, nil},
		{BuildInfo, dto.MetricType_GAUGE, 1, []string{LabelVersion, LabelCommit, LabelBuildDate, LabelGoVersion}},
	}
	g.Expect(mfs).To(HaveLen(len(tests)), "no unexpected families")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.name).To(HavePrefix(Namespace + "_"))
			mf := mfs[tt.name]
			g.Expect(mf).NotTo(BeNil())
			g.Expect(mf.GetType()).To(Equal(tt.typ))
			g.Expect(len(mf.GetHelp())).To(BeNumerically(">", 60), "help must tell an operator something")
			g.Expect(mf.GetMetric()).To(HaveLen(tt.series))
			for _, s := range mf.GetMetric() {
				ls := labels(s)
				g.Expect(ls).To(HaveKeyWithValue(LabelDriverName, testDriver))
				g.Expect(ls).To(HaveLen(1 + len(tt.dynamic)))
				for _, l := range tt.dynamic {
					g.Expect(ls).To(HaveKey(l))
				}
			}
		})
	}
}

func TestObserve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		attach    []time.Duration
		detach    []time.Duration
		wantCount [2]uint64  // attach, detach
		wantSum   [2]float64 // seconds
		// wantLE maps a bucket bound to the attach histogram's cumulative count.
		wantLE map[float64]uint64
	}{
		{
			name:   "nothing observed",
			wantLE: map[float64]uint64{0.05: 0, 600: 0},
		},
		{
			name:      "attaches land in their buckets",
			attach:    []time.Duration{10 * time.Millisecond, 700 * time.Millisecond, 3 * time.Second, 15 * time.Minute},
			wantCount: [2]uint64{4, 0},
			wantSum:   [2]float64{0.01 + 0.7 + 3 + 900, 0},
			wantLE:    map[float64]uint64{0.05: 1, 0.5: 1, 1: 2, 5: 3, 600: 3},
		},
		{
			name:      "detaches go to the detach histogram only",
			detach:    []time.Duration{2 * time.Second, 90 * time.Second},
			wantCount: [2]uint64{0, 2},
			wantSum:   [2]float64{0, 92},
			wantLE:    map[float64]uint64{600: 0},
		},
		{
			name:      "negative durations count as zero",
			attach:    []time.Duration{-5 * time.Second},
			detach:    []time.Duration{-time.Millisecond},
			wantCount: [2]uint64{1, 1},
			wantSum:   [2]float64{0, 0},
			wantLE:    map[float64]uint64{0.05: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			m, reg := registered(g)
			for _, d := range tt.attach {
				m.ObserveAttach(d)
			}
			for _, d := range tt.detach {
				m.ObserveDetach(d)
			}
			for i, name := range []string{AttachDurationSeconds, DetachDurationSeconds} {
				h := series(g, reg, name, nil).GetHistogram()
				g.Expect(h.GetSampleCount()).To(Equal(tt.wantCount[i]), name)
				g.Expect(h.GetSampleSum()).To(BeNumerically("~", tt.wantSum[i], 1e-9), name)
				g.Expect(h.GetBucket()).To(HaveLen(len(DurationBuckets)), name)
			}
			bounds := map[float64]uint64{}
			for _, b := range series(g, reg, AttachDurationSeconds, nil).GetHistogram().GetBucket() {
				bounds[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			for le, want := range tt.wantLE {
				g.Expect(bounds).To(HaveKeyWithValue(le, want), "le=%v", le)
			}
		})
	}
}

// statusErr implements GRPCStatus like errors from other gRPC-aware
// libraries do, without being a *status.Error.
type statusErr struct{ code codes.Code }

func (e statusErr) Error() string              { return "custom: " + e.code.String() }
func (e statusErr) GRPCStatus() *status.Status { return status.New(e.code, "custom") }

func TestOperationFailed(t *testing.T) {
	t.Parallel()
	grpcErr := status.Error(codes.DeadlineExceeded, "driver timed out")
	tests := []struct {
		name      string
		operation string
		err       error
		wantCode  string // "" means nothing is counted
	}{
		{"plain error", OperationAttach, errors.New(`PersistentVolume "pv-1" not found`), NoGRPCCode},
		{"context error", OperationDetach, context.DeadlineExceeded, NoGRPCCode},
		{"gRPC status error", OperationAttach, grpcErr, "DeadlineExceeded"},
		{"gRPC status error, detach", OperationDetach, status.Error(codes.NotFound, "no such volume"), "NotFound"},
		{"wrapped gRPC error", OperationAttach, fmt.Errorf("publishing: %w", grpcErr), "DeadlineExceeded"},
		{"twice wrapped gRPC error", OperationDetach, fmt.Errorf("a: %w", fmt.Errorf("b: %w", status.Error(codes.Internal, "x"))), "Internal"},
		{"joined errors", OperationAttach, errors.Join(errors.New("first"), status.Error(codes.Unavailable, "x")), "Unavailable"},
		{"custom GRPCStatus implementation, wrapped", OperationAttach, fmt.Errorf("w: %w", statusErr{codes.ResourceExhausted}), "ResourceExhausted"},
		{"nil error", OperationAttach, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			m, reg := registered(g)
			m.OperationFailed(tt.operation, tt.err)

			total := 0.0
			for _, s := range gather(g, reg)[OperationErrorsTotal].GetMetric() {
				total += s.GetCounter().GetValue()
			}
			if tt.wantCode == "" {
				g.Expect(total).To(BeZero())
				return
			}
			g.Expect(total).To(Equal(1.0))
			g.Expect(counterValue(g, reg, OperationErrorsTotal,
				map[string]string{LabelOperation: tt.operation, LabelGRPCCode: tt.wantCode})).To(Equal(1.0))
			g.Expect(GRPCCode(tt.err)).To(Equal(tt.wantCode))
		})
	}
}

func TestOperationFailedAccumulates(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	for range 3 {
		m.OperationFailed(OperationAttach, status.Error(codes.Internal, "boom"))
	}
	m.OperationFailed(OperationDetach, status.Error(codes.Internal, "boom"))
	g.Expect(counterValue(g, reg, OperationErrorsTotal, map[string]string{LabelOperation: OperationAttach, LabelGRPCCode: "Internal"})).To(Equal(3.0))
	g.Expect(counterValue(g, reg, OperationErrorsTotal, map[string]string{LabelOperation: OperationDetach, LabelGRPCCode: "Internal"})).To(Equal(1.0))
	g.Expect(counterValue(g, reg, OperationErrorsTotal, map[string]string{LabelOperation: OperationAttach, LabelGRPCCode: NoGRPCCode})).To(BeZero())
}

func TestVolumeDrift(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		found []string
		want  map[string]float64 // by kind
	}{
		{"nothing found: both series at zero", nil, map[string]float64{DriftDetachedOutOfBand: 0, DriftStillPublished: 0}},
		{"one detached out of band", []string{DriftDetachedOutOfBand}, map[string]float64{DriftDetachedOutOfBand: 1, DriftStillPublished: 0}},
		{"one still published", []string{DriftStillPublished}, map[string]float64{DriftDetachedOutOfBand: 0, DriftStillPublished: 1}},
		{
			"each finding counts once, by kind",
			[]string{DriftDetachedOutOfBand, DriftStillPublished, DriftDetachedOutOfBand, DriftDetachedOutOfBand},
			map[string]float64{DriftDetachedOutOfBand: 3, DriftStillPublished: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			m, reg := registered(g)
			for _, kind := range tt.found {
				m.VolumeDrift(kind)
			}
			g.Expect(gather(g, reg)[VolumeDriftTotal].GetMetric()).To(HaveLen(len(tt.want)), "no other kinds")
			for kind, want := range tt.want {
				g.Expect(counterValue(g, reg, VolumeDriftTotal, map[string]string{LabelKind: kind})).To(Equal(want), kind)
			}
		})
	}
}

func TestConnectionAndOutages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		calls       []bool
		wantUp      float64
		wantOutages float64
	}{
		{"never set", nil, 0, 0},
		{"down from the start is no outage", []bool{false, false}, 0, 0},
		{"up", []bool{true}, 1, 0},
		{"up then down", []bool{true, false}, 0, 1},
		{"repeated downs count once", []bool{true, false, false, false}, 0, 1},
		{"repeated ups count nothing", []bool{true, true, true}, 1, 0},
		{"flapping counts each transition", []bool{true, false, true, false, true, false}, 0, 3},
		{"recovered", []bool{false, true, false, true}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			m, reg := registered(g)
			for _, up := range tt.calls {
				m.SetConnectionUp(up)
			}
			g.Expect(gaugeValue(g, reg, CSIConnectionUp)).To(Equal(tt.wantUp))
			g.Expect(counterValue(g, reg, DriverOutagesTotal, nil)).To(Equal(tt.wantOutages))
		})
	}
}

func TestDriverReady(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(gaugeValue(g, reg, DriverReady)).To(BeZero())
	for _, tt := range []struct {
		ready bool
		want  float64
	}{{true, 1}, {false, 0}, {true, 1}} {
		m.SetDriverReady(tt.ready)
		g.Expect(gaugeValue(g, reg, DriverReady)).To(Equal(tt.want))
	}
	g.Expect(counterValue(g, reg, DriverOutagesTotal, nil)).To(BeZero(), "readiness is not connectivity")
}

// TestReady: csi_attacher_ready follows its source at every scrape, and is
// 0 before it has one.
func TestReady(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(gaugeValue(g, reg, Ready)).To(BeZero())
	var err error
	m.SetReadySource(func() error { return err })
	g.Expect(gaugeValue(g, reg, Ready)).To(Equal(1.0))
	err = errors.New("caches not synced")
	g.Expect(gaugeValue(g, reg, Ready)).To(BeZero())
	err = nil
	g.Expect(gaugeValue(g, reg, Ready)).To(Equal(1.0))
}

// va builds a VolumeAttachment from a compact description.
func va(deleting bool, finalizers []string, attached bool, attachErr, detachErr bool) *storagev1.VolumeAttachment {
	v := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va", Finalizers: finalizers}}
	if deleting {
		now := metav1.Now()
		v.DeletionTimestamp = &now
	}
	v.Status.Attached = attached
	if attachErr {
		v.Status.AttachError = &storagev1.VolumeError{Message: "attach failed"}
	}
	if detachErr {
		v.Status.DetachError = &storagev1.VolumeError{Message: "detach failed"}
	}
	return v
}

func TestState(t *testing.T) {
	t.Parallel()
	ours := []string{testFinalizer}
	both := []string{"example.com/other", testFinalizer}
	other := []string{"example.com/other"}
	tests := []struct {
		name      string
		va        *storagev1.VolumeAttachment
		finalizer string
		want      string
	}{
		{"new, nothing done yet", va(false, nil, false, false, false), testFinalizer, StateAttaching},
		{"finalizer added, publish in progress", va(false, ours, false, false, false), testFinalizer, StateAttaching},
		{"attached", va(false, ours, true, false, false), testFinalizer, StateAttached},
		{"attached wins over a stale attach error", va(false, ours, true, true, false), testFinalizer, StateAttached},
		{"attach error, not attached", va(false, ours, false, true, false), testFinalizer, StateFailed},
		{"attach error before the finalizer was added", va(false, nil, false, true, false), testFinalizer, StateFailed},
		{"detach error without deletion is ignored", va(false, ours, true, false, true), testFinalizer, StateAttached},
		{"deleting, attached", va(true, ours, true, false, false), testFinalizer, StateDetaching},
		{"deleting, never attached but finalizer held", va(true, ours, false, false, false), testFinalizer, StateDetaching},
		{"deleting wins over an attach error", va(true, ours, false, true, false), testFinalizer, StateDetaching},
		{"deleting with other finalizers too", va(true, both, true, false, false), testFinalizer, StateDetaching},
		{"deleting with detach error", va(true, ours, true, false, true), testFinalizer, StateFailed},
		{"deleting, our finalizer gone: done, not counted", va(true, other, false, false, false), testFinalizer, ""},
		{"deleting, our finalizer gone, stale detach error: not counted", va(true, other, false, false, true), testFinalizer, ""},
		{"deleting, empty finalizer skips the check", va(true, other, false, false, false), "", StateDetaching},
		{"deleting, empty finalizer, detach error", va(true, nil, false, false, true), "", StateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			NewWithT(t).Expect(State(tt.va, tt.finalizer)).To(Equal(tt.want))
		})
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	ours := []string{testFinalizer}
	vas := []storagev1.VolumeAttachment{
		*va(false, ours, true, false, false),              // attached
		*va(false, ours, true, false, false),              // attached
		*va(false, nil, false, false, false),              // attaching
		*va(false, ours, false, true, false),              // failed
		*va(true, ours, true, false, false),               // detaching
		*va(true, ours, true, false, true),                // failed
		*va(true, []string{"other"}, false, false, false), // not counted
	}
	g := NewWithT(t)
	attached, attaching, detaching, failed := Count(vas, testFinalizer)
	g.Expect([]int{attached, attaching, detaching, failed}).To(Equal([]int{2, 1, 1, 2}))
	attached, attaching, detaching, failed = Count(nil, testFinalizer)
	g.Expect([]int{attached, attaching, detaching, failed}).To(Equal([]int{0, 0, 0, 0}))
}

func stateGauges(g Gomega, reg *prometheus.Registry) map[string]float64 {
	return driverGauges(g, reg, VolumeAttachments, LabelState)
}

// driverGauges reads the gauge family name of the test driver, keyed by the
// value of label; nil when the family is absent.
func driverGauges(g Gomega, reg *prometheus.Registry, name, label string) map[string]float64 {
	mf := gather(g, reg)[name]
	if mf == nil {
		return nil
	}
	out := map[string]float64{}
	for _, s := range mf.GetMetric() {
		ls := labels(s)
		g.Expect(ls).To(HaveKeyWithValue(LabelDriverName, testDriver))
		out[ls[label]] = s.GetGauge().GetValue()
	}
	return out
}

func TestStateSourceAtCollect(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	g.Expect(stateGauges(g, reg)).To(BeNil(), "no source: gauges absent")

	var (
		mu     sync.Mutex
		counts = [4]int{3, 2, 1, 0}
		fail   error
		calls  int
	)
	m.SetStateSource(func() (int, int, int, int, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return counts[0], counts[1], counts[2], counts[3], fail
	})
	set := func(c [4]int, err error) {
		mu.Lock()
		defer mu.Unlock()
		counts, fail = c, err
	}

	g.Expect(stateGauges(g, reg)).To(Equal(map[string]float64{
		StateAttached: 3, StateAttaching: 2, StateDetaching: 1, StateFailed: 0,
	}))
	set([4]int{5, 0, 2, 7}, nil)
	g.Expect(stateGauges(g, reg)).To(Equal(map[string]float64{
		StateAttached: 5, StateAttaching: 0, StateDetaching: 2, StateFailed: 7,
	}), "the gauges follow the source without any Set call")

	set([4]int{9, 9, 9, 9}, errors.New("cache not synced"))
	g.Expect(stateGauges(g, reg)).To(BeNil(), "an erroring source leaves the gauges out, not wrong")

	set([4]int{1, 1, 1, 1}, nil)
	g.Expect(stateGauges(g, reg)).To(HaveKeyWithValue(StateFailed, 1.0), "back after the error")

	mu.Lock()
	g.Expect(calls).To(Equal(4), "called once per scrape")
	mu.Unlock()

	m.SetStateSource(nil)
	g.Expect(stateGauges(g, reg)).To(BeNil(), "nil source: gauges absent again")
	mu.Lock()
	g.Expect(calls).To(Equal(4))
	mu.Unlock()
}

func TestRegister(t *testing.T) {
	t.Parallel()

	t.Run("twice into the same registry returns an error", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		m, reg := registered(g)
		var err error
		g.Expect(func() { err = m.Register(reg) }).NotTo(Panic())
		g.Expect(err).To(HaveOccurred())
		var are prometheus.AlreadyRegisteredError
		g.Expect(errors.As(err, &are)).To(BeTrue(), "%v", err)
		_ = gather(g, reg) // still consistent
	})

	t.Run("a second Metrics of the same driver is refused", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		_, reg := registered(g)
		g.Expect(New(testDriver).Register(reg)).To(HaveOccurred())
	})

	t.Run("two drivers share a registry, told apart by driver_name", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		a, reg := registered(g)
		b := New("other.example.com")
		g.Expect(b.Register(reg)).To(Succeed())
		a.SetDriverReady(true)
		b.SetDriverReady(false)
		mf := gather(g, reg)[DriverReady]
		g.Expect(mf.GetMetric()).To(HaveLen(2))
		got := map[string]float64{}
		for _, s := range mf.GetMetric() {
			got[labels(s)[LabelDriverName]] = s.GetGauge().GetValue()
		}
		g.Expect(got).To(Equal(map[string]float64{testDriver: 1, "other.example.com": 0}))
	})

	t.Run("a failed Register registers nothing", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		reg := prometheus.NewPedanticRegistry()
		// Another Metrics' gauge, so the clash is on the fifth collector
		// and the four before it must be rolled back.
		clash := New(testDriver).connUp
		g.Expect(reg.Register(clash)).To(Succeed())
		m := New(testDriver)
		g.Expect(m.Register(reg)).To(MatchError(ContainSubstring("csi_attacher")))
		g.Expect(gather(g, reg)).To(HaveLen(1), "only the clashing gauge")

		g.Expect(reg.Unregister(clash)).To(BeTrue())
		g.Expect(m.Register(reg)).To(Succeed(), "nothing of m was left behind")
	})

	t.Run("nil arguments", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		g.Expect(New(testDriver).Register(nil)).To(HaveOccurred())
		var m *Metrics
		g.Expect(m.Register(prometheus.NewRegistry())).To(HaveOccurred())
	})
}

func TestNilMetricsIsNoOp(t *testing.T) {
	t.Parallel()
	var m *Metrics
	NewWithT(t).Expect(func() {
		m.ObserveAttach(time.Second)
		m.ObserveDetach(time.Second)
		m.OperationFailed(OperationAttach, errors.New("x"))
		m.SetDriverReady(true)
		m.SetConnectionUp(true)
		m.SetConnectionUp(false)
		m.VolumeDrift(DriftStillPublished)
		m.SetStateSource(func() (int, int, int, int, error) { return 0, 0, 0, 0, nil })
		m.SetSnapshotSource(func() (Snapshot, error) { return Snapshot{}, nil })
		m.SetMaxInflight(4)
		m.SetBuildInfo("v1", "abc", "today")
	}).NotTo(Panic())
}

// TestConcurrentUse is meant for go test -race: recording, swapping the
// state source and scraping at the same time.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		for i := range n {
			m.SetConnectionUp(i%2 == 0)
			m.SetDriverReady(i%3 == 0)
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			m.ObserveAttach(time.Duration(i) * time.Millisecond)
			m.OperationFailed(OperationDetach, status.Error(codes.Aborted, "x"))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			m.SetStateSource(func() (int, int, int, int, error) { return i, 0, 0, 0, nil })
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			_, err := reg.Gather()
			if err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	g.Expect(counterValue(g, reg, DriverOutagesTotal, nil)).To(Equal(float64(n / 2)))
	g.Expect(series(g, reg, AttachDurationSeconds, nil).GetHistogram().GetSampleCount()).To(Equal(uint64(n)))
	g.Expect(counterValue(g, reg, OperationErrorsTotal, map[string]string{LabelOperation: OperationDetach, LabelGRPCCode: "Aborted"})).To(Equal(float64(n)))
	g.Expect(stateGauges(g, reg)).To(HaveKeyWithValue(StateAttached, float64(n-1)))
}

// The help of every metric mentions what it measures in words an operator
// searches for; keep the names and helps from drifting apart silently.
func TestHelpMentionsSubject(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m, reg := registered(g)
	m.SetSnapshotSource(func() (Snapshot, error) { return Snapshot{}, nil })
	m.SetTrackedSource(func() map[string]int { return map[string]int{"freshness": 0, "locks": 0} })
	m.SetMaxInflight(1)
	m.SetBuildInfo("v1", "abc", "today")
	mfs := gather(g, reg)
	for name, word := range map[string]string{
		AttachDurationSeconds: "attach latency",
		DetachDurationSeconds: "detach latency",
		OperationErrorsTotal:  "gRPC code",
		VolumeAttachments:     "by state",
		DriverReady:           "Probe",
		CSIConnectionUp:       "connection",
		DriverOutagesTotal:    "up to down",
		VolumeDriftTotal:      "ListVolumes",
		OldestPendingSeconds:  "oldest VolumeAttachment",
		MaxInflight:           "ResourceExhausted",
		BuildInfo:             "version",
	} {
		g.Expect(strings.ToLower(mfs[name].GetHelp())).To(ContainSubstring(strings.ToLower(word)), name)
	}
}
