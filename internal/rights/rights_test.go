package rights

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/config/rbac"
	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// TestUsesMatchShippedRules: every entry of the rights table names a rule
// that ships, and every verb the attacher reviews is one the rule grants,
// so the attacher never asks for a right config/rbac does not give.
func TestUsesMatchShippedRules(t *testing.T) {
	rs := shippedRoles(t)
	roles := map[string]role{
		rbac.ClusterRoleFile:     rs.cluster,
		rbac.LeaseRoleFile:       rs.lease,
		rbac.SecretWatchRoleFile: rs.secretWatch,
	}
	for g, u := range uses {
		t.Run(g.file+" "+g.group+"/"+g.resource, func(t *testing.T) {
			gm := NewWithT(t)
			r, ok := roles[g.file]
			gm.Expect(ok).To(BeTrue(), "unknown file")
			var granted []string
			for _, rule := range r.rules {
				if slices.Contains(rule.APIGroups, g.group) && slices.Contains(rule.Resources, g.resource) {
					granted = append(granted, rule.Verbs...)
				}
			}
			gm.Expect(granted).NotTo(BeEmpty(), "no rule of %s grants it", g.file)
			gm.Expect(granted).To(ContainElements(u.verbs))
			gm.Expect(u.verbs).To(ContainElements(u.byName))
		})
	}
}

func TestShippedRolesNameTheirFiles(t *testing.T) {
	g := NewWithT(t)
	rs := shippedRoles(t)
	g.Expect(rs.cluster.ref).To(Equal("ClusterRole external-attacher-runner (config/rbac/role.yaml)"))
	g.Expect(rs.lease.ref).To(Equal("Role external-attacher-cfg (config/rbac/leader_election_role.yaml)"))
	g.Expect(rs.secretWatch.ref).To(Equal("ClusterRole csi-attacher-secret-watch (config/rbac/secret_watch_role.yaml)"))
	_, err := parseRole("broken.yaml", []byte("rules: {"), nil)
	g.Expect(err).To(MatchError(ContainSubstring("config/rbac/broken.yaml")))
}

// TestComponentNames: the roles the sidecar Component ships are named
// with the driver's name as in its Lease, which RequiredRights takes from
// the Lease name; the Secret watch, which it does not ship, has none.
func TestComponentNames(t *testing.T) {
	g := NewWithT(t)
	lease := leader.LeaseName("hostpath.csi.k8s.io")
	for _, r := range must(RequiredRights(true, "storage", lease)) {
		if r.Resource == "leases" {
			g.Expect(r.GrantedByComponent).To(Equal("Role external-attacher-cfg-hostpath-csi-k8s-io, bound by RoleBinding " +
				"csi-attacher-role-cfg-hostpath-csi-k8s-io in namespace storage (config/components/sidecar)"))
		} else {
			g.Expect(r.GrantedByComponent).To(Equal("ClusterRole external-attacher-runner-hostpath-csi-k8s-io, bound by "+
				"ClusterRoleBinding csi-attacher-role-hostpath-csi-k8s-io (config/components/sidecar)"), "%s", r)
		}
	}
	for _, r := range must(RequiredRights(true, "storage", "")) {
		g.Expect(r.GrantedByComponent).To(ContainSubstring("-<driver>"), "driver unknown")
	}
	for _, r := range must(SecretWatchRights()) {
		g.Expect(r.GrantedByComponent).To(BeEmpty())
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		name   string
		status authzv1.SubjectAccessReviewStatus
		want   bool
	}{
		{name: "allowed", status: authzv1.SubjectAccessReviewStatus{Allowed: true}, want: true},
		{name: "no opinion", status: authzv1.SubjectAccessReviewStatus{}},
		{name: "denied", status: authzv1.SubjectAccessReviewStatus{Denied: true}},
		{name: "both: the denial wins", status: authzv1.SubjectAccessReviewStatus{Allowed: true, Denied: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			review := func(_ context.Context, r *authzv1.SelfSubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SelfSubjectAccessReview, error) {
				r.Status = tt.status
				return r, nil
			}
			checks := ReviewRights(context.Background(), review, must(SecretWatchRights())[:1])
			g.Expect(checks).To(HaveLen(1))
			g.Expect(checks[0].Allowed).To(Equal(tt.want))
			g.Expect(checks[0].Granted()).To(Equal(tt.want))
		})
	}
}

func TestAllGranted(t *testing.T) {
	list, watch := must(SecretWatchRights())[0], must(SecretWatchRights())[1]
	timeout := errors.New("timeout")
	tests := []struct {
		name    string
		checks  []RightCheck
		want    bool
		wantErr bool
	}{
		{name: "all", checks: []RightCheck{{Right: list, Allowed: true}, {Right: watch, Allowed: true}}, want: true},
		{name: "one denied", checks: []RightCheck{{Right: list, Allowed: true}, {Right: watch}}},
		{name: "a failed review", checks: []RightCheck{{Right: list, Allowed: true}, {Right: watch, Err: timeout}}, wantErr: true},
		{name: "a denial before a failed review", checks: []RightCheck{{Right: list}, {Right: watch, Err: timeout}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ok, err := AllGranted(tt.checks)
			g.Expect(ok).To(Equal(tt.want))
			if tt.wantErr {
				g.Expect(err).To(MatchError(ContainSubstring("failed to review the right to watch secrets: timeout")))
				g.Expect(errors.Is(err, timeout)).To(BeTrue())
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}

func TestLeaseWatchRights(t *testing.T) {
	g := NewWithT(t)
	var names []string
	for _, r := range must(LeaseWatchRights("kube-system", "lease")) {
		names = append(names, r.String())
		g.Expect(r.WithoutIt).To(Equal(LeaseWatchLoss))
	}
	g.Expect(names).To(Equal([]string{
		"list leases.coordination.k8s.io/lease in namespace kube-system",
		"watch leases.coordination.k8s.io/lease in namespace kube-system",
	}))
}

// shippedRoles are the embedded roles; the build's files must parse.
func shippedRoles(t *testing.T) roles {
	t.Helper()
	rs, err := shipped()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// must is for the rights of the embedded roles, which parse.
func must(rights []Right, err error) []Right {
	if err != nil {
		panic(err)
	}
	return rights
}

// TestBrokenRoleIsAnError: a shipped role that does not parse makes every
// list of rights an error naming the file, and the monitor's caller returns
// it; nothing panics, at import or later.
func TestBrokenRoleIsAnError(t *testing.T) {
	g := NewWithT(t)
	broken := fmt.Errorf("failed to parse %s/%s: %w", rbac.Dir, rbac.LeaseRoleFile, errors.New("bad YAML"))
	saved := shipped
	t.Cleanup(func() { shipped = saved })
	shipped = func() (roles, error) { return roles{}, broken }

	_, err := RequiredRights(true, "kube-system", "lease")
	g.Expect(err).To(MatchError(broken))
	_, err = LeaseWatchRights("kube-system", "lease")
	g.Expect(err).To(MatchError(broken))
	_, err = SecretWatchRights()
	g.Expect(err).To(MatchError(broken))
	g.Expect(Verdicts("", true, nil)).To(Equal([]Verdict{{Status: StatusSkip, Message: "no rights were checked"}}))
}
