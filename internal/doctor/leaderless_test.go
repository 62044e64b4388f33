package doctor

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/internal/leader"
)

var testLease = leader.LeaseRef{Driver: "hostpath.csi.k8s.io", Namespace: "default", Name: "external-attacher-leader-hostpath-csi-k8s-io"}

func lease(holder string, renewedAgo time.Duration, durationSeconds int32, now time.Time) *coordinationv1.Lease {
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

func TestCheckLeaderless(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	leases := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	tests := []struct {
		name   string
		lease  *coordinationv1.Lease
		err    error
		status Status
		msg    string
	}{
		{"no Lease", nil, apierrors.NewNotFound(leases, testLease.Name), StatusOK,
			"off; no attacher of hostpath.csi.k8s.io holds the Lease default/external-attacher-leader-hostpath-csi-k8s-io"},
		{"held and renewed", lease("csi-hostpathplugin-0_1234", 3*time.Second, 15, now), nil, StatusFail,
			"another attacher of hostpath.csi.k8s.io is active: csi-hostpathplugin-0_1234 holds the Lease " +
				"default/external-attacher-leader-hostpath-csi-k8s-io, renewed 3s ago, while this one runs without --leader-election"},
		{"renewed within its own longer duration", lease("other", 50*time.Second, 60, now), nil, StatusFail, "renewed 50s ago"},
		{"no duration: client-go's 15 s", lease("other", 14*time.Second, 0, now), nil, StatusFail, "renewed 14s ago"},
		{"left to expire", lease("other", 16*time.Second, 15, now), nil, StatusOK,
			"was last renewed by other 16s ago: nobody holds it now"},
		{"released", lease("", time.Second, 15, now), nil, StatusOK, "off; nobody holds the Lease"},
		{"may not read it", nil, apierrors.NewForbidden(leases, testLease.Name, errors.New("no")), StatusSkip,
			"not allowed to get the Lease default/external-attacher-leader-hostpath-csi-k8s-io (the Role external-attacher-cfg grants it)"},
		{"API down", nil, errors.New("connection refused"), StatusWarn, "cannot get the Lease default/external-attacher-leader-hostpath-csi-k8s-io: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckLeaderless(testLease, tt.lease, tt.err, now)
			g.Expect(r.Check).To(Equal(CheckLeaderElectionName))
			g.Expect(r.Status).To(Equal(tt.status), r.Message)
			g.Expect(r.Message).To(ContainSubstring(tt.msg))
		})
	}
}
