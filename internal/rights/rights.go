package rights

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/csi-attacher/csi-attacher/config/rbac"
	"github.com/csi-attacher/csi-attacher/internal/leader"
)

// The rights table: every right the attacher reviews is read from the RBAC
// that ships (config/rbac, embedded), one right per verb, and annotated
// with how the attacher uses it (uses). A right added to the markers of
// controllers/rbac.go is therefore reviewed by the doctor subcommand and
// at start without further edits, and a right that is not shipped is never
// asked for.

// Right is one API permission the attacher needs.
type Right struct {
	Group       string `json:"group"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Verb        string `json:"verb"`
	// Namespace is empty for cluster-scoped resources and for rights needed
	// in every namespace.
	Namespace string `json:"namespace,omitempty"`
	// Name narrows the right to one object (the Lease).
	Name string `json:"name,omitempty"`
	// GrantedBy names the object of config/rbac that grants it, by the
	// reference attacher's name that config/rbac keeps.
	GrantedBy string `json:"grantedBy"`
	// GrantedByComponent names the same role and its binding as
	// config/components/sidecar deploys them, with the driver's name as a
	// suffix; empty for a role the Component does not ship.
	GrantedByComponent string `json:"grantedByComponent,omitempty"`
	// WithoutIt is set for a right the attacher can run without, and says
	// what is lost. The reference's RBAC lacks these, so a missing one is a
	// warning, not a failure: swapping in the attacher with the reference's
	// manifests must work.
	WithoutIt string `json:"withoutIt,omitempty"`
}

// String names the right the way kubectl auth can-i would take it.
func (r Right) String() string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.Group != "" {
		res += "." + r.Group
	}
	if r.Name != "" {
		res += "/" + r.Name
	}
	s := r.Verb + " " + res
	if r.Namespace != "" {
		s += " in namespace " + r.Namespace
	}
	return s
}

// eventsNamespace is where the Events about cluster-scoped objects
// (VolumeAttachments, PersistentVolumes) go.
const eventsNamespace = metav1.NamespaceDefault

// scope is where the attacher needs a right.
type scope int

const (
	// clusterWide: a cluster-scoped resource, or every namespace.
	clusterWide scope = iota
	// inEventsNamespace: eventsNamespace.
	inEventsNamespace
	// inLeaseNamespace: the namespace of the leader-election Lease.
	inLeaseNamespace
)

// use says how the attacher uses the rights of one rule of a shipped role.
// A rule without an entry in uses is needed cluster-wide, with every verb
// it grants, and the attacher cannot work without it.
type use struct {
	scope scope
	// verbs, when set, are the verbs reviewed, in this order, instead of
	// every verb the rule grants.
	verbs []string
	// byName are the verbs narrowed to the Lease's name (a name cannot
	// narrow create).
	byName []string
	// withoutIt is Right.WithoutIt.
	withoutIt string
	// optional are verbs the attacher can run without, with what is lost
	// (Right.WithoutIt); they override withoutIt.
	optional map[string]string
	// unreviewed, when set, says why the rule is shipped but never
	// reviewed.
	unreviewed string
}

// grant names a rule's group and resource ("resource/subresource") in one
// of the embedded files.
type grant struct {
	file, group, resource string
}

// uses holds the rules the attacher does not simply need everywhere.
var uses = map[grant]use{
	// Secrets are read one by one, in whatever namespace the StorageClass
	// names.
	{rbac.ClusterRoleFile, "", "secrets"}: {
		withoutIt: "volumes whose StorageClass names a controller-publish secret fail to attach"},
	{rbac.ClusterRoleFile, "events.k8s.io", "events"}: {scope: inEventsNamespace,
		withoutIt: "no Warning Events for attach and detach failures (they still show in the VolumeAttachment status and the log)"},
	{rbac.ClusterRoleFile, "", "events"}: {
		unreviewed: "the attacher's recorder writes events.k8s.io Events, reviewed as such"},
	// Leader election gets, creates and updates the Lease; internal/leader
	// also lists and watches it by name, and works without that. The Role
	// grants delete and patch too, for the reference's sake: not reviewed.
	{rbac.LeaseRoleFile, "coordination.k8s.io", "leases"}: {scope: inLeaseNamespace,
		verbs: []string{"get", "update", "create", "list", "watch"}, byName: []string{"get", "update", "list", "watch"},
		optional: map[string]string{"list": LeaseWatchLoss, "watch": LeaseWatchLoss}},
	{rbac.LeaseRoleFile, "", "events"}: {
		unreviewed: "only the LeaderElection Events about the Lease need it"},
}

// LeaseWatchLoss is what the attacher loses without list and watch on its
// Lease: it reads the Lease with plain GETs instead.
const LeaseWatchLoss = "the Lease is read with plain GETs: a standby notices a released Lease only at its next retry " +
	"(up to 2.2 × --leader-election-retry-period) instead of at once, and each standby reads the Lease every retry period"

// role is one embedded Role or ClusterRole.
type role struct {
	file string
	ref  string
	// kind and name are the role's; binding is the name of the binding
	// that config/components/sidecar ships for it with the driver's suffix,
	// empty when the Component does not ship the role.
	kind, name, binding string
	rules               []rbacv1.PolicyRule
}

// parseRole reads an embedded file of config/rbac; binding is the embedded
// binding the Component ships with it, or nil.
func parseRole(file string, data, binding []byte) (role, error) {
	var obj struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Rules             []rbacv1.PolicyRule `json:"rules"`
	}
	if err := yaml.UnmarshalStrict(data, &obj); err != nil {
		return role{}, fmt.Errorf("failed to parse %s/%s: %w", rbac.Dir, file, err)
	}
	r := role{
		file:  file,
		ref:   fmt.Sprintf("%s %s (%s)", obj.Kind, obj.Name, path.Join(rbac.Dir, file)),
		kind:  obj.Kind,
		name:  obj.Name,
		rules: obj.Rules,
	}
	if binding != nil {
		var b metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(binding, &b); err != nil {
			return role{}, fmt.Errorf("failed to parse the binding of %s/%s: %w", rbac.Dir, file, err)
		}
		r.binding = b.Name
	}
	return r, nil
}

// roles are the shipped roles, parsed from the files of config/rbac
// embedded at build time.
type roles struct {
	cluster, lease, secretWatch role
}

// loadRoles parses the embedded roles. A file that does not parse is a bug
// of the build, not of the cluster; it is still an error the caller
// returns (the attacher then fails at start, naming the file), never a
// panic at import.
func loadRoles() (roles, error) {
	var rs roles
	var err error
	if rs.cluster, err = parseRole(rbac.ClusterRoleFile, rbac.ClusterRole, rbac.ClusterRoleBinding); err != nil {
		return roles{}, err
	}
	if rs.lease, err = parseRole(rbac.LeaseRoleFile, rbac.LeaseRole, rbac.LeaseRoleBinding); err != nil {
		return roles{}, err
	}
	if rs.secretWatch, err = parseRole(rbac.SecretWatchRoleFile, rbac.SecretWatchRole, nil); err != nil {
		return roles{}, err
	}
	return rs, nil
}

// shipped parses the embedded roles once, on first use. A variable so that
// a test can stand in a broken build.
var shipped = sync.OnceValues(loadRoles)

// componentRef names r and its binding as config/components/sidecar
// deploys them for the driver whose name, as in its Lease, is driver: the
// names of config/rbac with the suffix -<driver>, so that each driver of a
// cluster has its own. It is empty for a role the Component does not ship.
// namespace, for a Role, is where it and its binding are.
func (r role) componentRef(driver, namespace string) string {
	if r.binding == "" {
		return ""
	}
	kind, where := "ClusterRoleBinding", ""
	if r.kind == "Role" {
		kind, where = "RoleBinding", " in namespace "+namespace
	}
	return fmt.Sprintf("%s %s-%s, bound by %s %s-%s%s (%s)", r.kind, r.name, driver, kind, r.binding, driver, where, rbac.ComponentDir)
}

// unknownDriver stands for the driver's name in the Component's object
// names when the driver did not answer.
const unknownDriver = "<driver>"

// leaseDriver is the driver's name as it is in its Lease name, which is
// also the suffix of the Component's objects, or unknownDriver.
func leaseDriver(leaseName string) string {
	if d, ok := strings.CutPrefix(leaseName, leader.LeaseNamePrefix); ok && d != "" {
		return d
	}
	return unknownDriver
}

// rights lists the rights of r the attacher reviews, rule by rule in the
// file's order. leaseNamespace and leaseName place the Lease rights; the
// Lease name also gives the driver's name the Component's objects carry.
func (r role) rights(leaseNamespace, leaseName string) []Right {
	component := r.componentRef(leaseDriver(leaseName), leaseNamespace)
	var out []Right
	for _, rule := range r.rules {
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				u := uses[grant{r.file, group, resource}]
				if u.unreviewed != "" {
					continue
				}
				verbs := rule.Verbs
				if u.verbs != nil {
					verbs = u.verbs
				}
				res, sub, _ := strings.Cut(resource, "/")
				for _, verb := range verbs {
					right := Right{Group: group, Resource: res, Subresource: sub, Verb: verb,
						GrantedBy: r.ref, GrantedByComponent: component, WithoutIt: u.withoutIt}
					if loss, ok := u.optional[verb]; ok {
						right.WithoutIt = loss
					}
					switch u.scope {
					case clusterWide:
						// No namespace: a cluster-scoped resource or every namespace.
					case inEventsNamespace:
						right.Namespace = eventsNamespace
					case inLeaseNamespace:
						right.Namespace = leaseNamespace
						if slices.Contains(u.byName, verb) {
							right.Name = leaseName
						}
					}
					out = append(out, right)
				}
			}
		}
	}
	return out
}

// RequiredRights lists every API right the attacher uses: those of the
// shipped ClusterRole and, with leader election, those of the Lease Role.
// leaseName may be empty when the driver name is unknown. The error is a
// shipped role that does not parse.
func RequiredRights(leaderElection bool, leaseNamespace, leaseName string) ([]Right, error) {
	rs, err := shipped()
	if err != nil {
		return nil, err
	}
	// The ClusterRole's rights are cluster-wide; the Lease name gives only
	// the driver's name to them.
	rights := rs.cluster.rights("", leaseName)
	if leaderElection {
		rights = append(rights, rs.lease.rights(leaseNamespace, leaseName)...)
	}
	return rights, nil
}

// LeaseWatchRights are the rights of the Lease watch of internal/leader:
// list and watch on the Lease, as main.go reviews them at start to choose
// between the watch and plain GETs.
func LeaseWatchRights(leaseNamespace, leaseName string) ([]Right, error) {
	rs, err := shipped()
	if err != nil {
		return nil, err
	}
	var out []Right
	for _, r := range rs.lease.rights(leaseNamespace, leaseName) {
		if r.Resource == "leases" && r.WithoutIt == LeaseWatchLoss {
			out = append(out, r)
		}
	}
	return out, nil
}

// SecretWatchRights are the rights of the optional Secret watch: list and
// watch on Secrets in every namespace, as the attacher reviews them at
// start for its plan (controllers.ReviewGrants).
// They are not in RequiredRights because the attacher works without them:
// the shipped RBAC leaves them out on purpose, since they let it enumerate
// the cluster's Secrets by name.
func SecretWatchRights() ([]Right, error) {
	rs, err := shipped()
	if err != nil {
		return nil, err
	}
	return rs.secretWatch.rights("", ""), nil
}

// RightCheck is the answer of one SelfSubjectAccessReview.
type RightCheck struct {
	Right Right
	// Allowed is the authorizer's decision (allowed and not denied), set
	// by ReviewRights.
	Allowed bool
	// Reason is the authorizer's explanation, often empty.
	Reason string
	// Err is set when the review itself failed.
	Err error
}

// Granted is whether the review succeeded and allowed the right.
func (c RightCheck) Granted() bool {
	return c.Err == nil && c.Allowed
}

// AllGranted tells whether every right of checks is granted, looking at
// them in order: a failed review before any denial is returned as the
// error, a denial is false. A caller that must not act on a right it
// could not check (the Secret watch) treats the error as false too.
func AllGranted(checks []RightCheck) (bool, error) {
	for _, c := range checks {
		if c.Err != nil {
			return false, fmt.Errorf("failed to review the right to %s: %w", c.Right, c.Err)
		}
		if !c.Allowed {
			return false, nil
		}
	}
	return true, nil
}

// allowed decides a SelfSubjectAccessReview; every check of the
// attacher's rights goes through it (ReviewRights). The API promises that
// Denied is never set together with Allowed; should an authorizer chain
// answer both anyway, the denial wins.
func allowed(s authzv1.SubjectAccessReviewStatus) bool {
	return s.Allowed && !s.Denied
}

// Reviewer creates a SelfSubjectAccessReview: a typed client's
// AuthorizationV1().SelfSubjectAccessReviews().Create, or ClientReviewer.
type Reviewer func(context.Context, *authzv1.SelfSubjectAccessReview, metav1.CreateOptions) (*authzv1.SelfSubjectAccessReview, error)

// ClientReviewer is the Reviewer of a controller-runtime client.
func ClientReviewer(c client.Writer) Reviewer {
	return func(ctx context.Context, r *authzv1.SelfSubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SelfSubjectAccessReview, error) {
		if err := c.Create(ctx, r); err != nil {
			return nil, err
		}
		return r, nil
	}
}

// ReviewRights asks the API server about each right, one
// SelfSubjectAccessReview each.
func ReviewRights(ctx context.Context, review Reviewer, rights []Right) []RightCheck {
	out := make([]RightCheck, 0, len(rights))
	for _, r := range rights {
		ssar := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace:   r.Namespace,
				Verb:        r.Verb,
				Group:       r.Group,
				Resource:    r.Resource,
				Subresource: r.Subresource,
				Name:        r.Name,
			},
		}}
		res, err := review(ctx, ssar, metav1.CreateOptions{})
		c := RightCheck{Right: r, Err: err}
		if err == nil {
			c.Allowed = allowed(res.Status)
			c.Reason = res.Status.Reason
		}
		out = append(out, c)
	}
	return out
}
