package rbac_test

import (
	"os"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/internal/rights"
)

func load(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

// clusterRoleName is the reference attacher's name of its ClusterRole,
// which role.yaml keeps.
const clusterRoleName = "external-attacher-runner"

// referenceRights are the rights of the reference attacher's ClusterRole
// external-attacher-runner (kubernetes-csi/external-attacher,
// deploy/kubernetes/rbac.yaml), as group/resource: verbs.
var referenceRights = map[string][]string{
	"/persistentvolumes":                      {"get", "list", "watch", "patch"},
	"storage.k8s.io/csinodes":                 {"get", "list", "watch"},
	"storage.k8s.io/volumeattachments":        {"get", "list", "watch", "patch"},
	"storage.k8s.io/volumeattachments/status": {"patch"},
}

// TestRBACIsLeastPrivilege: the ClusterRole grants no wildcard, update or
// delete, and nothing the attacher does not review at start and in doctor
// (internal/rights reads this same file, embedded by this package, so its
// list is the one allowed here); it grants all the reference's rights, so the reference
// runs with it, and anything beyond them is a right the attacher can run
// without, so the attacher runs with the reference's RBAC.
func TestRBACIsLeastPrivilege(t *testing.T) {
	g := NewWithT(t)
	var role rbacv1.ClusterRole
	load(t, "role.yaml", &role)
	g.Expect(role.Name).To(Equal(clusterRoleName), "the reference attacher's name, for drop-in swaps")

	allowed := map[string][]string{}
	optional := map[string]bool{}
	for _, r := range mustRights(rights.RequiredRights(false, "", "")) {
		key := r.Group + "/" + r.Resource
		if r.Subresource != "" {
			key += "/" + r.Subresource
		}
		allowed[key] = append(allowed[key], r.Verb)
		optional[key] = r.WithoutIt != ""
	}
	// Either Events API is enough; the attacher reviews events.k8s.io.
	g.Expect(allowed).To(HaveKey("events.k8s.io/events"))
	allowed["/events"] = allowed["events.k8s.io/events"]
	optional["/events"] = optional["events.k8s.io/events"]

	granted := map[string][]string{}
	for _, rule := range role.Rules {
		g.Expect(rule.Verbs).NotTo(ContainElement("*"))
		g.Expect(rule.Verbs).NotTo(ContainElement("update"), "patch, never update, on shared objects")
		g.Expect(rule.Verbs).NotTo(ContainElement("delete"))
		g.Expect(rule.ResourceNames).To(BeEmpty())
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				verbs, ok := allowed[key]
				g.Expect(ok).To(BeTrue(), "a rule for %s, which the attacher does not review", key)
				g.Expect(verbs).To(ContainElements(rule.Verbs), "verbs on %s", key)
				granted[key] = append(granted[key], rule.Verbs...)
			}
		}
	}
	for key, verbs := range granted {
		if !optional[key] {
			g.Expect(referenceRights[key]).To(ContainElements(verbs), "%s beyond the reference's, and not optional", key)
		}
	}
	for key, verbs := range referenceRights {
		g.Expect(granted[key]).To(ContainElements(verbs), "the reference's rights on %s", key)
	}
}

// TestSecretWatchRoleIsOptional: the extra rights of the Secret watch are
// list and watch on Secrets, nothing else, bound to the attacher's
// ServiceAccount, and not granted unless the user opts in.
func TestSecretWatchRoleIsOptional(t *testing.T) {
	g := NewWithT(t)
	var role rbacv1.ClusterRole
	load(t, "secret_watch_role.yaml", &role)
	g.Expect(role.Rules).To(Equal([]rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list", "watch"},
	}}))

	var binding, base rbacv1.ClusterRoleBinding
	load(t, "secret_watch_role_binding.yaml", &binding)
	load(t, "role_binding.yaml", &base)
	g.Expect(binding.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}))
	g.Expect(binding.Subjects).To(Equal(base.Subjects), "the same ServiceAccount as the attacher's own rights")
	g.Expect(binding.Name).NotTo(Equal(base.Name))

	var kustomization struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Labels     []any    `json:"labels"`
		Resources  []string `json:"resources"`
	}
	load(t, "kustomization.yaml", &kustomization)
	g.Expect(kustomization.Resources).To(ContainElement("role.yaml"))
	g.Expect(kustomization.Resources).NotTo(ContainElement(ContainSubstring("secret_watch")), "opt-in only")
}

// mustRights is for the rights of the embedded roles, which parse.
func mustRights(rs []rights.Right, err error) []rights.Right {
	if err != nil {
		panic(err)
	}
	return rs
}
