package manifests

import (
	"os"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
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

func TestRBACIsLeastPrivilege(t *testing.T) {
	g := NewWithT(t)
	var role rbacv1.ClusterRole
	load(t, "../../config/rbac/role.yaml", &role)
	g.Expect(role.Name).To(Equal("external-attacher-runner"), "the reference attacher's name, for drop-in swaps")

	allowed := map[string][]string{
		"/persistentvolumes":                      {"get", "list", "watch", "patch"},
		"storage.k8s.io/volumeattachments":        {"get", "list", "watch", "patch"},
		"storage.k8s.io/volumeattachments/status": {"patch"},
		"storage.k8s.io/csinodes":                 {"get", "list", "watch"},
		"/secrets":                                {"get"},
		"/events":                                 {"create", "patch"},
		"events.k8s.io/events":                    {"create", "patch"},
	}
	seen := map[string]bool{}
	for _, rule := range role.Rules {
		g.Expect(rule.Verbs).NotTo(ContainElement("*"))
		g.Expect(rule.Verbs).NotTo(ContainElement("update"), "patch, never update, on shared objects")
		g.Expect(rule.Verbs).NotTo(ContainElement("delete"))
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				verbs, ok := allowed[key]
				g.Expect(ok).To(BeTrue(), "unexpected rule for %s", key)
				g.Expect(verbs).To(ContainElements(rule.Verbs), "verbs on %s", key)
				seen[key] = true
			}
		}
	}
	for key := range allowed {
		if key == "/events" || key == "events.k8s.io/events" {
			continue // either Events API is enough
		}
		g.Expect(seen).To(HaveKey(key), "missing rule for %s", key)
	}
}

// TestSecretWatchRoleIsOptional: the extra rights of the Secret watch are
// list and watch on Secrets, nothing else, bound to the attacher's
// ServiceAccount, and not granted unless the user opts in.
func TestSecretWatchRoleIsOptional(t *testing.T) {
	g := NewWithT(t)
	var role rbacv1.ClusterRole
	load(t, "../../config/rbac/secret_watch_role.yaml", &role)
	g.Expect(role.Rules).To(Equal([]rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list", "watch"},
	}}))

	var binding, base rbacv1.ClusterRoleBinding
	load(t, "../../config/rbac/secret_watch_role_binding.yaml", &binding)
	load(t, "../../config/rbac/role_binding.yaml", &base)
	g.Expect(binding.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}))
	g.Expect(binding.Subjects).To(Equal(base.Subjects), "the same ServiceAccount as the attacher's own rights")
	g.Expect(binding.Name).NotTo(Equal(base.Name))

	var kustomization struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Labels     []any    `json:"labels"`
		Resources  []string `json:"resources"`
	}
	load(t, "../../config/rbac/kustomization.yaml", &kustomization)
	g.Expect(kustomization.Resources).To(ContainElement("role.yaml"))
	g.Expect(kustomization.Resources).NotTo(ContainElement(ContainSubstring("secret_watch")), "opt-in only")
}
