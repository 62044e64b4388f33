package leader

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

var testLease = LeaseRef{Driver: "hostpath.csi.k8s.io", Namespace: "default", Name: "external-attacher-leader-hostpath-csi-k8s-io"}

func heldLease(holder string, renewedAgo time.Duration, durationSeconds int32, now time.Time) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: testLease.Name, Namespace: testLease.Namespace}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	if durationSeconds > 0 {
		l.Spec.LeaseDurationSeconds = ptr.To(durationSeconds)
	}
	l.Spec.RenewTime = &metav1.MicroTime{Time: now.Add(-renewedAgo)}
	return l
}

func TestCheckOtherLeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	leases := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	tests := []struct {
		name  string
		lease *coordinationv1.Lease
		err   error
		state OtherState
		msg   string
	}{
		{"no Lease", nil, apierrors.NewNotFound(leases, testLease.Name), NoOtherLeader,
			"off; no attacher of hostpath.csi.k8s.io holds the Lease default/external-attacher-leader-hostpath-csi-k8s-io"},
		{"held and renewed", heldLease("csi-hostpathplugin-0_1234", 3*time.Second, 15, now), nil, OtherLeaderActive,
			"another attacher of hostpath.csi.k8s.io is active: csi-hostpathplugin-0_1234 holds the Lease " +
				"default/external-attacher-leader-hostpath-csi-k8s-io, renewed 3s ago, while this one runs without --leader-election"},
		{"renewed within its own longer duration", heldLease("other", 50*time.Second, 60, now), nil, OtherLeaderActive, "renewed 50s ago"},
		{"no duration: client-go's 15 s", heldLease("other", 14*time.Second, 0, now), nil, OtherLeaderActive, "renewed 14s ago"},
		{"left to expire", heldLease("other", 16*time.Second, 15, now), nil, NoOtherLeader,
			"was last renewed by other 16s ago: nobody holds it now"},
		{"released", heldLease("", time.Second, 15, now), nil, NoOtherLeader, "off; nobody holds the Lease"},
		{"may not read it", nil, apierrors.NewForbidden(leases, testLease.Name, errors.New("no")), OtherLeaderForbidden,
			"not allowed to get the Lease default/external-attacher-leader-hostpath-csi-k8s-io (the Role external-attacher-cfg grants it)"},
		{"API down", nil, errors.New("connection refused"), OtherLeaderUnknown, "cannot get the Lease default/external-attacher-leader-hostpath-csi-k8s-io: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckOtherLeader(testLease, tt.lease, tt.err, now)
			g.Expect(r.State).To(Equal(tt.state), r.Message)
			g.Expect(r.Message).To(ContainSubstring(tt.msg))
		})
	}
}

// TestLeaderlessMonitorLogs: the conflict is logged at error level when it
// starts, again when the holder changes and after repeatEvery, not on
// every read; its end is logged once at info level.
func TestLeaderlessMonitorLogs(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var current *coordinationv1.Lease
	var buf bytes.Buffer
	log := funcr.New(func(prefix, args string) { buf.WriteString(args + "\n") }, funcr.Options{})
	m := &LeaderlessMonitor{
		Lease: testLease,
		Get: func(context.Context) (*coordinationv1.Lease, error) {
			if current == nil {
				return nil, apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, testLease.Name)
			}
			return current, nil
		},
		Log: log,
		Now: func() time.Time { return now },
	}
	errorLines := func() int { return strings.Count(buf.String(), `"error"=`) }

	g.Expect(m.CheckOnce(context.Background()).State).To(Equal(NoOtherLeader))
	g.Expect(buf.String()).To(BeEmpty())

	current = heldLease("a", time.Second, 15, now)
	g.Expect(m.CheckOnce(context.Background()).State).To(Equal(OtherLeaderActive))
	g.Expect(errorLines()).To(Equal(1))
	g.Expect(buf.String()).To(ContainSubstring(`"msg"="Another attacher of this driver is active while this replica runs without leader election"`))
	g.Expect(buf.String()).To(ContainSubstring(`"holder"="a"`))

	now = now.Add(30 * time.Second)
	current = heldLease("a", time.Second, 15, now)
	m.CheckOnce(context.Background())
	g.Expect(errorLines()).To(Equal(1), "the same holder is not logged on every read")

	current = heldLease("b", time.Second, 15, now)
	m.CheckOnce(context.Background())
	g.Expect(errorLines()).To(Equal(2), "a new holder is")

	now = now.Add(repeatEvery)
	current = heldLease("b", time.Second, 15, now)
	m.CheckOnce(context.Background())
	g.Expect(errorLines()).To(Equal(3), "a lasting conflict is logged again")

	now = now.Add(time.Minute)
	m.CheckOnce(context.Background())
	g.Expect(buf.String()).To(ContainSubstring(`"msg"="No other attacher of this driver is active any more"`))
	g.Expect(errorLines()).To(Equal(3))
}
