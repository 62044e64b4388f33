package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gcustom"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

const testDriver = "doctor.csi.test"

var allCaps = csi.Capabilities{
	ControllerService: true, PublishUnpublish: true, PublishReadonly: true,
	ListVolumes: true, ListVolumesPublishedNodes: true, SingleNodeMultiWriter: true,
}

func TestCheckDriver(t *testing.T) {
	tests := []struct {
		name     string
		probe    DriverProbe
		statuses []Status
		contains []string // in the verdict lines and details, in order
	}{
		{
			name:     "unreachable",
			probe:    DriverProbe{Address: "unix:///csi/csi.sock", Wait: 10 * time.Second, Err: errors.New("context deadline exceeded")},
			statuses: []Status{StatusFail},
			contains: []string{"FAIL driver: cannot reach the CSI driver at unix:///csi/csi.sock within 10s: context deadline exceeded", "--csi-address"},
		},
		{
			name: "socket missing",
			probe: DriverProbe{Address: "unix:///csi/csi.sock", Wait: 2 * time.Second, SocketMissing: true,
				Err: errors.New("context deadline exceeded")},
			statuses: []Status{StatusFail},
			contains: []string{"within 2s: the socket file does not exist", "controller container is running"},
		},
		{
			name: "socket the attacher may not open",
			probe: DriverProbe{Address: "unix:///csi/csi.sock", Wait: 10 * time.Second, Err: errors.New("context deadline exceeded"),
				SocketAccess: &csi.SocketAccessError{Path: "/csi/csi.sock", Socket: "/csi/csi.sock", Mode: 0o755 | os.ModeSocket,
					Identity: csi.Identity{UID: 65532, GIDs: []int{65532}}}},
			statuses: []Status{StatusFail},
			contains: []string{"FAIL driver: cannot connect to the CSI driver at unix:///csi/csi.sock: permission denied: " +
				"the attacher (uid 65532, gids 65532) may not connect to the CSI driver socket /csi/csi.sock: the socket is " +
				"owned by uid 0 gid 0 with mode Srwxr-xr-x (0755)", "runAsUser: 0"},
		},
		{
			name:     "full",
			probe:    DriverProbe{Address: "unix:///csi/csi.sock", Info: &DriverInfo{Name: testDriver, VendorVersion: "1.2.3", Capabilities: allCaps}},
			statuses: []Status{StatusOK, StatusOK},
			contains: []string{
				"OK   driver: doctor.csi.test 1.2.3 at unix:///csi/csi.sock",
				"plugin capabilities: CONTROLLER_SERVICE",
				"controller capabilities: PUBLISH_UNPUBLISH_VOLUME, PUBLISH_READONLY, LIST_VOLUMES, LIST_VOLUMES_PUBLISHED_NODES, SINGLE_NODE_MULTI_WRITER",
				"OK   mode: full",
				"readonly: passed through",
				"ReadWriteOnce -> SINGLE_NODE_MULTI_WRITER",
			},
		},
		{
			name: "full without readonly and SINGLE_NODE_MULTI_WRITER",
			probe: DriverProbe{Address: "tcp://127.0.0.1:10000", Info: &DriverInfo{Name: testDriver,
				Capabilities: csi.Capabilities{ControllerService: true, PublishUnpublish: true}}},
			statuses: []Status{StatusOK, StatusOK},
			contains: []string{
				"driver: doctor.csi.test (no vendor version) at tcp://127.0.0.1:10000",
				"controller capabilities: PUBLISH_UNPUBLISH_VOLUME",
				"mode: full",
				"readonly: never sent",
				"ReadWriteOnce and ReadWriteOncePod -> SINGLE_NODE_WRITER",
			},
		},
		{
			name:     "trivial without controller service",
			probe:    DriverProbe{Address: "unix:///s", Info: &DriverInfo{Name: testDriver, VendorVersion: "1"}},
			statuses: []Status{StatusOK, StatusOK},
			contains: []string{"plugin capabilities: none", "controller capabilities: none", "mode: trivial: the driver has no CONTROLLER_SERVICE"},
		},
		{
			name: "trivial without PUBLISH_UNPUBLISH_VOLUME",
			probe: DriverProbe{Address: "unix:///s", Info: &DriverInfo{Name: testDriver, VendorVersion: "1",
				Capabilities: csi.Capabilities{ControllerService: true, PublishReadonly: true}}},
			statuses: []Status{StatusOK, StatusOK},
			contains: []string{"controller capabilities: PUBLISH_READONLY", "mode: trivial: the driver lacks PUBLISH_UNPUBLISH_VOLUME"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			results := CheckDriver(tt.probe)
			g.Expect(statuses(results)).To(Equal(tt.statuses))
			g.Expect(render(results)).To(ContainSubstringsInOrder(tt.contains...))
		})
	}
}

func TestCheckAPI(t *testing.T) {
	tests := []struct {
		name     string
		info     APIInfo
		status   Status
		contains string
	}{
		{"no configuration", APIInfo{ConfigErr: errors.New("no kubeconfig")}, StatusFail,
			"cannot load the Kubernetes client configuration: no kubeconfig. Pass --kubeconfig"},
		{"unreachable", APIInfo{Host: "https://k:6443", Err: errors.New("connection refused")}, StatusFail,
			"cannot reach the API server at https://k:6443: connection refused"},
		{"with user", APIInfo{Host: "https://k:6443", Version: "v1.37.2", User: "admin", Groups: []string{"system:masters"}}, StatusOK,
			"Kubernetes v1.37.2 at https://k:6443, as user admin (groups system:masters)"},
		{"without user", APIInfo{Host: "https://k:6443", Version: "v1.37.2"}, StatusOK,
			"Kubernetes v1.37.2 at https://k:6443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckAPI(tt.info)
			g.Expect(r.Check).To(Equal(CheckAPIName))
			g.Expect(r.Status).To(Equal(tt.status))
			g.Expect(r.Message).To(ContainSubstring(tt.contains))
		})
	}
}

func TestRequiredRights(t *testing.T) {
	g := NewWithT(t)
	withLE := mustRights(rights.RequiredRights(true, "kube-system", "external-attacher-leader-doctor-csi-test"))
	g.Expect(withLE).To(HaveLen(20))
	names := make([]string, 0, len(withLE))
	for _, r := range withLE {
		names = append(names, r.String())
	}
	g.Expect(names).To(ContainElements(
		"get persistentvolumes", "list persistentvolumes", "watch persistentvolumes", "patch persistentvolumes",
		"get volumeattachments.storage.k8s.io", "patch volumeattachments/status.storage.k8s.io",
		"watch csinodes.storage.k8s.io", "get secrets",
		"create events.events.k8s.io in namespace default", "patch events.events.k8s.io in namespace default",
		"get leases.coordination.k8s.io/external-attacher-leader-doctor-csi-test in namespace kube-system",
		"update leases.coordination.k8s.io/external-attacher-leader-doctor-csi-test in namespace kube-system",
		"create leases.coordination.k8s.io in namespace kube-system",
		"list leases.coordination.k8s.io/external-attacher-leader-doctor-csi-test in namespace kube-system",
		"watch leases.coordination.k8s.io/external-attacher-leader-doctor-csi-test in namespace kube-system",
	))
	g.Expect(names).NotTo(ContainElement(ContainSubstring("list secrets")), "Secrets are never listed")

	without := mustRights(rights.RequiredRights(false, "kube-system", ""))
	g.Expect(without).To(HaveLen(15))
	for _, r := range without {
		g.Expect(r.Resource).NotTo(Equal("leases"))
	}
}

func TestCheckRights(t *testing.T) {
	shipped := mustRights(rights.RequiredRights(true, "kube-system", "lease"))
	allowAll := func() []rights.RightCheck {
		out := make([]rights.RightCheck, len(shipped))
		for i, r := range shipped {
			out[i] = rights.RightCheck{Right: r, Allowed: true}
		}
		return out
	}
	deny := func(resource, sub, verb string) func([]rights.RightCheck) {
		return func(cs []rights.RightCheck) {
			for i := range cs {
				r := cs[i].Right
				if r.Resource == resource && r.Subresource == sub && r.Verb == verb {
					cs[i].Allowed = false
				}
			}
		}
	}
	tests := []struct {
		name     string
		user     string
		le       bool
		mutate   []func([]rights.RightCheck)
		checks   []rights.RightCheck // instead of allowAll+mutate when set
		statuses []Status
		contains []string
	}{
		{name: "all granted", user: "system:serviceaccount:kube-system:csi-attacher", le: true,
			statuses: []Status{StatusOK},
			contains: []string{"OK   rights: all 20 API rights the attacher needs are granted to system:serviceaccount:kube-system:csi-attacher"}},
		{name: "all granted, leader election off", le: false, checks: allowAll()[:15],
			statuses: []Status{StatusOK},
			contains: []string{"all 15 API rights the attacher needs are granted to us (Lease rights not checked: --leader-election=false)"}},
		{name: "status patch missing", user: "sa", le: true,
			mutate:   []func([]rights.RightCheck){deny("volumeattachments", "status", "patch")},
			statuses: []Status{StatusFail},
			contains: []string{"FAIL rights: sa may not patch volumeattachments/status.storage.k8s.io: grant it in the ClusterRole external-attacher-runner (config/rbac/role.yaml), " +
				"or in the ClusterRole external-attacher-runner-<driver>, bound by ClusterRoleBinding csi-attacher-role-<driver> (config/components/sidecar)"}},
		{name: "one verdict per missing right", user: "sa", le: true,
			mutate:   []func([]rights.RightCheck){deny("secrets", "", "get"), deny("leases", "", "update"), deny("events", "", "create")},
			statuses: []Status{StatusWarn, StatusWarn, StatusFail},
			contains: []string{
				"WARN rights: sa may not get secrets: grant it in the ClusterRole external-attacher-runner (config/rbac/role.yaml), " +
					"or in the ClusterRole external-attacher-runner-<driver>, bound by ClusterRoleBinding csi-attacher-role-<driver> (config/components/sidecar); " +
					"without it, volumes whose StorageClass names a controller-publish secret fail to attach",
				"WARN rights: sa may not create events.events.k8s.io in namespace default: grant it in the ClusterRole",
				"without it, no Warning Events",
				"FAIL rights: sa may not update leases.coordination.k8s.io/lease in namespace kube-system: grant it in the Role external-attacher-cfg (config/rbac/leader_election_role.yaml) bound in namespace kube-system, " +
					"or in the Role external-attacher-cfg-<driver>, bound by RoleBinding csi-attacher-role-cfg-<driver> in namespace kube-system (config/components/sidecar)",
			}},
		// The reference's RBAC grants neither Events nor Secrets: an
		// attacher swapped in with it works, and doctor says what is lost.
		{name: "only optional rights missing", user: "sa", le: true,
			mutate:   []func([]rights.RightCheck){deny("secrets", "", "get"), deny("events", "", "create"), deny("events", "", "patch")},
			statuses: []Status{StatusWarn, StatusWarn, StatusWarn, StatusOK},
			contains: []string{"WARN rights: sa may not get secrets", "OK   rights: the 17 API rights the attacher cannot work without are granted to sa"}},
		// Without list and watch on the Lease the attacher reads it with
		// plain GETs: a warning that says what is lost.
		{name: "no watch on the Lease", user: "sa", le: true,
			mutate:   []func([]rights.RightCheck){deny("leases", "", "list"), deny("leases", "", "watch")},
			statuses: []Status{StatusWarn, StatusWarn, StatusOK},
			contains: []string{
				"WARN rights: sa may not list leases.coordination.k8s.io/lease in namespace kube-system: grant it in the Role external-attacher-cfg (config/rbac/leader_election_role.yaml) bound in namespace kube-system",
				"without it, the Lease is read with plain GETs: a standby notices a released Lease only at its next retry",
				"WARN rights: sa may not watch leases.coordination.k8s.io/lease",
			}},
		{name: "reason is quoted", user: "sa", le: true,
			checks:   []rights.RightCheck{{Right: shipped[0], Reason: "no RBAC policy matched"}},
			statuses: []Status{StatusFail},
			contains: []string{"sa may not get persistentvolumes: grant it in the ClusterRole external-attacher-runner (config/rbac/role.yaml), or in the " +
				"ClusterRole external-attacher-runner-<driver>, bound by ClusterRoleBinding csi-attacher-role-<driver> (config/components/sidecar) (no RBAC policy matched)"}},
		{name: "review failed", le: true,
			checks:   []rights.RightCheck{{Right: shipped[0], Allowed: true}, {Right: shipped[1], Err: errors.New("timeout")}},
			statuses: []Status{StatusFail},
			contains: []string{"FAIL rights: could not check list persistentvolumes: timeout"}},
		{name: "nothing checked", le: true, checks: []rights.RightCheck{},
			statuses: []Status{StatusSkip}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			checks := tt.checks
			if checks == nil {
				checks = allowAll()
				for _, m := range tt.mutate {
					m(checks)
				}
			}
			results := CheckRights(tt.user, tt.le, checks)
			g.Expect(statuses(results)).To(Equal(tt.statuses))
			g.Expect(render(results)).To(ContainSubstringsInOrder(tt.contains...))
		})
	}
}

func TestSecretWatchRights(t *testing.T) {
	g := NewWithT(t)
	shipped := mustRights(rights.SecretWatchRights())
	names := make([]string, 0, len(shipped))
	for _, r := range shipped {
		g.Expect(r.Namespace).To(BeEmpty(), "the watch covers every namespace")
		g.Expect(r.GrantedBy).To(ContainSubstring("config/rbac/secret_watch_role.yaml"))
		names = append(names, r.String())
	}
	g.Expect(names).To(Equal([]string{"list secrets", "watch secrets"}))
	g.Expect(mustRights(rights.RequiredRights(true, "kube-system", "lease"))).NotTo(ContainElements(shipped), "the watch is optional")
}

func TestCheckSecretWatch(t *testing.T) {
	list, watch := mustRights(rights.SecretWatchRights())[0], mustRights(rights.SecretWatchRights())[1]
	tests := []struct {
		name     string
		trivial  bool
		checks   []rights.RightCheck
		status   Status
		contains []string
		details  []string
	}{
		{name: "allowed",
			checks: []rights.RightCheck{{Right: list, Allowed: true}, {Right: watch, Allowed: true}},
			status: StatusOK,
			contains: []string{"OK   secret-watch: Secret watch on: a created or fixed controllerPublish Secret " +
				"retries its VolumeAttachments at once"}},
		{name: "not allowed, the default",
			checks: []rights.RightCheck{{Right: list}, {Right: watch}},
			status: StatusOK,
			contains: []string{
				"OK   secret-watch: Secret watch off (the shipped RBAC grants get on secrets only, by design): " +
					"a fixed Secret is picked up at the next retry, within --retry-interval-max (30s); " +
					"apply config/rbac/secret_watch_role.yaml and secret_watch_role_binding.yaml for immediate retries",
			},
			details: []string{"not granted: list secrets", "not granted: watch secrets"}},
		{name: "list without watch is off",
			checks:   []rights.RightCheck{{Right: list, Allowed: true}, {Right: watch, Reason: "no RBAC policy matched"}},
			status:   StatusOK,
			contains: []string{"Secret watch off"},
			details:  []string{"not granted: watch secrets (no RBAC policy matched)"}},
		{name: "review failed",
			checks:   []rights.RightCheck{{Right: list, Allowed: true}, {Right: watch, Err: errors.New("timeout")}},
			status:   StatusWarn,
			contains: []string{"WARN secret-watch: could not check watch secrets: timeout. The attacher counts a failed review as no Secret watch", "(30s)"}},
		{name: "a failed review outweighs a denial",
			checks:   []rights.RightCheck{{Right: list}, {Right: watch, Err: errors.New("timeout")}},
			status:   StatusWarn,
			contains: []string{"could not check watch secrets: timeout"}},
		{name: "trivial driver",
			trivial:  true,
			status:   StatusSkip,
			contains: []string{"SKIP secret-watch: trivial mode: the attacher never calls ControllerPublishVolume, so it reads no Secrets"}},
		{name: "nothing checked", checks: []rights.RightCheck{}, status: StatusSkip, contains: []string{"no rights were checked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			caps := allCaps
			if tt.trivial {
				caps.PublishUnpublish = false
			}
			r := checkSecretWatch(controllers.NewPlan(caps, controllers.Grants{SecretWatch: tt.checks}), 30*time.Second)
			g.Expect(r.Check).To(Equal(CheckSecretWatchName))
			g.Expect(r.Status).To(Equal(tt.status))
			g.Expect(render([]Result{r})).To(ContainSubstringsInOrder(tt.contains...))
			g.Expect(r.Details).To(Equal(tt.details))
		})
	}
}

func TestCheckCSIDriver(t *testing.T) {
	obj := func(attach *bool) *storagev1.CSIDriver {
		return &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
			Spec: storagev1.CSIDriverSpec{AttachRequired: attach}}
	}
	tests := []struct {
		name     string
		d        *storagev1.CSIDriver
		status   Status
		contains string
	}{
		{"absent", nil, StatusOK, "no CSIDriver object doctor.csi.test: Kubernetes then requires attach"},
		{"attachRequired unset", obj(nil), StatusOK, "does not set attachRequired, which defaults to true"},
		{"attachRequired true", obj(ptr.To(true)), StatusOK, "CSIDriver doctor.csi.test has attachRequired=true"},
		{"attachRequired false", obj(ptr.To(false)), StatusWarn,
			"attachRequired=false: Kubernetes will never create VolumeAttachments for this driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckCSIDriver(testDriver, tt.d)
			g.Expect(r.Check).To(Equal(CheckCSIDriverName))
			g.Expect(r.Status).To(Equal(tt.status))
			g.Expect(r.Message).To(ContainSubstring(tt.contains))
		})
	}
}

func csiNode(name string, drivers ...string) storagev1.CSINode {
	n := storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, d := range drivers {
		n.Spec.Drivers = append(n.Spec.Drivers, storagev1.CSINodeDriver{Name: d, NodeID: "id-" + name})
	}
	return n
}

func TestCheckCSINodes(t *testing.T) {
	var many []storagev1.CSINode
	for i := range 13 {
		many = append(many, csiNode(fmt.Sprintf("node-%02d", i), "other.csi.test"))
	}
	tests := []struct {
		name     string
		nodes    []storagev1.CSINode
		status   Status
		contains string
		details  []string
	}{
		{"no CSINodes", nil, StatusWarn, "there are no CSINodes at all", nil},
		{"all have it", []storagev1.CSINode{csiNode("a", testDriver), csiNode("b", "other.csi.test", testDriver)},
			StatusOK, "all 2 CSINodes have driver doctor.csi.test", nil},
		{"some lack it", []storagev1.CSINode{csiNode("c"), csiNode("a", testDriver), csiNode("b", "other.csi.test")},
			StatusWarn, "2 of 3 CSINodes lack driver doctor.csi.test: volumes cannot be attached to them", []string{"b", "c"}},
		{"at most 10 listed", many, StatusWarn, "13 of 13 CSINodes lack driver",
			[]string{"node-00", "node-01", "node-02", "node-03", "node-04", "node-05", "node-06", "node-07", "node-08", "node-09", "... and 3 more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckCSINodes(testDriver, tt.nodes)
			g.Expect(r.Check).To(Equal(CheckCSINodesName))
			g.Expect(r.Status).To(Equal(tt.status))
			g.Expect(r.Message).To(ContainSubstring(tt.contains))
			g.Expect(r.Details).To(Equal(tt.details))
		})
	}
}

func TestCheckVolumeAttachments(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	va := func(name string, mutate ...func(*storagev1.VolumeAttachment)) storagev1.VolumeAttachment {
		v := storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-time.Minute))},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: testDriver, NodeName: "node-a",
				Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-" + name)}},
			Status: storagev1.VolumeAttachmentStatus{Attached: true},
		}
		for _, m := range mutate {
			m(&v)
		}
		return v
	}
	attachErr := func(msg string) func(*storagev1.VolumeAttachment) {
		return func(v *storagev1.VolumeAttachment) {
			v.Status.Attached = false
			v.Status.AttachError = &storagev1.VolumeError{Message: msg}
		}
	}
	detachErr := func(msg string) func(*storagev1.VolumeAttachment) {
		return func(v *storagev1.VolumeAttachment) { v.Status.DetachError = &storagev1.VolumeError{Message: msg} }
	}
	deletedAgo := func(d time.Duration) func(*storagev1.VolumeAttachment) {
		return func(v *storagev1.VolumeAttachment) {
			v.DeletionTimestamp = ptr.To(metav1.NewTime(now.Add(-d)))
			v.Finalizers = []string{"external-attacher/doctor-csi-test"}
		}
	}
	createdAgo := func(d time.Duration, attached bool) func(*storagev1.VolumeAttachment) {
		return func(v *storagev1.VolumeAttachment) {
			v.CreationTimestamp = metav1.NewTime(now.Add(-d))
			v.Status.Attached = attached
		}
	}
	otherDriver := func(v *storagev1.VolumeAttachment) { v.Spec.Attacher = "other.csi.test" }
	inline := func(v *storagev1.VolumeAttachment) {
		v.Spec.Source = storagev1.VolumeAttachmentSource{InlineVolumeSpec: &corev1PVSpec}
	}
	long := strings.Repeat("x", 150) + "\n" + strings.Repeat("y", 150)
	var many []storagev1.VolumeAttachment
	for i := range 12 {
		many = append(many, va(fmt.Sprintf("va-%02d", i), attachErr("boom")))
	}

	tests := []struct {
		name     string
		vas      []storagev1.VolumeAttachment
		status   Status
		contains []string
		details  []string
	}{
		{name: "none", status: StatusOK, contains: []string{"0 VolumeAttachments of doctor.csi.test, none failing or stuck"}},
		{name: "healthy, other drivers ignored",
			vas: []storagev1.VolumeAttachment{
				va("ok"), va("young-deleting", deletedAgo(9*time.Minute)), va("young-pending", createdAgo(9*time.Minute, false)),
				va("old-attached", createdAgo(time.Hour, true)), va("theirs", otherDriver, attachErr("not ours")),
			},
			status: StatusOK, contains: []string{"4 VolumeAttachments of doctor.csi.test, none failing or stuck"}},
		{name: "attach error, trimmed to 200 characters",
			vas:      []storagev1.VolumeAttachment{va("ok"), va("bad", attachErr(long))},
			status:   StatusWarn,
			contains: []string{"1 of 2 VolumeAttachments of doctor.csi.test need attention: 1 with errors.", "Errors are retried"},
			details:  []string{"bad (pv pv-bad, node node-a): attach error: " + strings.Repeat("x", 150) + " " + strings.Repeat("y", 49) + "..."}},
		{name: "detach error while deleting for long",
			vas:      []storagev1.VolumeAttachment{va("det", deletedAgo(time.Hour), detachErr("rpc error: code = Internal desc = busy"))},
			status:   StatusWarn,
			contains: []string{"1 of 1 VolumeAttachments of doctor.csi.test need attention: 1 with errors."},
			details:  []string{"det (pv pv-det, node node-a): deleting for 1h0m0s; detach error: rpc error: code = Internal desc = busy"}},
		{name: "attach and detach error",
			vas:     []storagev1.VolumeAttachment{va("both", attachErr("a"), detachErr("d"))},
			status:  StatusWarn,
			details: []string{"both (pv pv-both, node node-a): attach error: a; detach error: d"}},
		{name: "deleting for more than 10 minutes",
			vas:      []storagev1.VolumeAttachment{va("gone", deletedAgo(11*time.Minute))},
			status:   StatusWarn,
			contains: []string{"1 deleting for more than 10m0s", "keeps the finalizer"},
			details:  []string{"gone (pv pv-gone, node node-a): deleting for 11m0s, finalizers external-attacher/doctor-csi-test"}},
		{name: "pending without error",
			vas:      []storagev1.VolumeAttachment{va("wait", createdAgo(20*time.Minute, false), inline)},
			status:   StatusWarn,
			contains: []string{"1 not attached after 10m0s without an error", "is one running and leading?"},
			details:  []string{"wait (inline volume, node node-a): not attached after 20m0s and no error"}},
		{name: "errors listed before deleting before pending",
			vas: []storagev1.VolumeAttachment{
				va("a-pending", createdAgo(time.Hour, false)), va("b-deleting", deletedAgo(time.Hour)), va("c-failed", attachErr("e")),
			},
			status:   StatusWarn,
			contains: []string{"3 of 3 VolumeAttachments of doctor.csi.test need attention: 1 with errors, 1 deleting for more than 10m0s, 1 not attached after 10m0s without an error."},
			details: []string{
				"c-failed (pv pv-c-failed, node node-a): attach error: e",
				"b-deleting (pv pv-b-deleting, node node-a): deleting for 1h0m0s, finalizers external-attacher/doctor-csi-test",
				"a-pending (pv pv-a-pending, node node-a): not attached after 1h0m0s and no error",
			}},
		{name: "at most 10 listed", vas: many, status: StatusWarn,
			contains: []string{"12 of 12 VolumeAttachments"},
			details: []string{
				"va-00 (pv pv-va-00, node node-a): attach error: boom", "va-01 (pv pv-va-01, node node-a): attach error: boom",
				"va-02 (pv pv-va-02, node node-a): attach error: boom", "va-03 (pv pv-va-03, node node-a): attach error: boom",
				"va-04 (pv pv-va-04, node node-a): attach error: boom", "va-05 (pv pv-va-05, node node-a): attach error: boom",
				"va-06 (pv pv-va-06, node node-a): attach error: boom", "va-07 (pv pv-va-07, node node-a): attach error: boom",
				"va-08 (pv pv-va-08, node node-a): attach error: boom", "va-09 (pv pv-va-09, node node-a): attach error: boom",
				"... and 2 more",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := CheckVolumeAttachments(testDriver, tt.vas, now)
			g.Expect(r.Check).To(Equal(CheckAttachmentsName))
			g.Expect(r.Status).To(Equal(tt.status))
			g.Expect(r.Message).To(ContainSubstringsInOrder(tt.contains...))
			g.Expect(r.Details).To(Equal(tt.details))
		})
	}
}

func TestTrimKeepsRunes(t *testing.T) {
	g := NewWithT(t)
	msg := strings.Repeat("é", 250)
	got := trim(msg)
	g.Expect(got).To(Equal(strings.Repeat("é", MaxErrorLength) + "..."))
	g.Expect(trim("  short\n\tmessage ")).To(Equal("short message"))
}

func TestCheckFetch(t *testing.T) {
	g := NewWithT(t)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "csinodes"}, "", errors.New("no"))
	r := CheckFetch(CheckCSINodesName, "list CSINodes", forbidden)
	g.Expect(r.Status).To(Equal(StatusSkip))
	g.Expect(r.Message).To(ContainSubstring("not allowed to list CSINodes"))

	r = CheckFetch(CheckCSINodesName, "list CSINodes", errors.New("i/o timeout"))
	g.Expect(r.Status).To(Equal(StatusFail))
	g.Expect(r.Message).To(Equal("cannot list CSINodes: i/o timeout"))
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name     string
		statuses []Status
		exit     int
		line     string
	}{
		{"all ok", []Status{StatusOK, StatusOK}, 0, "doctor: healthy: 2 ok, 0 warnings, 0 failed, 0 skipped"},
		{"warnings alone", []Status{StatusOK, StatusWarn, StatusSkip}, 0, "doctor: healthy with warnings: 1 ok, 1 warnings, 0 failed, 1 skipped"},
		{"a failure", []Status{StatusWarn, StatusFail, StatusOK}, 1, "doctor: BROKEN: 1 ok, 1 warnings, 1 failed, 0 skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var rs []Result
			for _, s := range tt.statuses {
				rs = append(rs, Result{Check: "x", Status: s})
			}
			s := Summarize(rs)
			g.Expect(s.ExitCode()).To(Equal(tt.exit))
			g.Expect(s.String()).To(Equal(tt.line))
		})
	}
}

func TestSplitFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		output string
		as     string
		rest   []string
		err    string
	}{
		{name: "defaults", args: []string{"--csi-address=/s"}, output: "text", rest: []string{"--csi-address=/s"}},
		{name: "output=json", args: []string{"--output=json", "--csi-address", "/s"}, output: "json", rest: []string{"--csi-address", "/s"}},
		{name: "-o json", args: []string{"-o", "json", "-v=2"}, output: "json", rest: []string{"-v=2"}},
		{name: "as", args: []string{"--as", "system:serviceaccount:ns:sa", "--kubeconfig=k"}, output: "text",
			as: "system:serviceaccount:ns:sa", rest: []string{"--kubeconfig=k"}},
		{name: "bad output", args: []string{"--output=yaml"}, err: `invalid value "yaml" for --output`},
		{name: "missing value", args: []string{"--output"}, err: "flag needs an argument: --output"},
		{name: "empty as", args: []string{"--as="}, err: "--as needs a user name"},
		{name: "after --", args: []string{"--", "--output=json"}, output: "text", rest: []string{"--", "--output=json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f, rest, err := splitFlags(tt.args)
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.output).To(Equal(tt.output))
			g.Expect(f.as).To(Equal(tt.as))
			g.Expect(rest).To(Equal(tt.rest))
		})
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		exit   int
		stdout string
		stderr string
	}{
		{"help", []string{"--help"}, ExitOK, "Usage: csi-attacher doctor", ""},
		{"help word", []string{"help"}, ExitOK, "--output=text|json", ""},
		{"unknown flag", []string{"--csi-address=/s", "--bogus"}, ExitBadArgs, "", "flag provided but not defined: -bogus"},
		{"missing csi-address", []string{}, ExitBadArgs, "", "--csi-address"},
		{"bad csi-address", []string{"--csi-address=relative.sock"}, ExitBadArgs, "", "--csi-address:"},
		{"bad output", []string{"--csi-address=/s", "--output=yaml"}, ExitBadArgs, "", "for --output"},
		{"stray word", []string{"--csi-address=/s", "now"}, ExitBadArgs, "", `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var stdout, stderr bytes.Buffer
			exit := Run(context.Background(), tt.args, func(string) string { return "" }, nil, &stdout, &stderr)
			g.Expect(exit).To(Equal(tt.exit), "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			g.Expect(stdout.String()).To(ContainSubstring(tt.stdout))
			g.Expect(stderr.String()).To(ContainSubstring(tt.stderr))
		})
	}
}

func TestRunWithoutDriverAndAPI(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	env := map[string]string{"CSI_PROBE_TIMEOUT": "100ms"}
	var stdout, stderr bytes.Buffer
	exit := Run(context.Background(),
		[]string{"--csi-address=" + dir + "/csi.sock", "--kubeconfig=" + dir + "/missing.kubeconfig"},
		func(k string) string { return env[k] }, nil, &stdout, &stderr)
	g.Expect(exit).To(Equal(ExitFailed), stderr.String())
	g.Expect(stdout.String()).To(ContainSubstringsInOrder(
		"FAIL driver: cannot reach the CSI driver at unix://"+dir+"/csi.sock within 200ms: the socket file does not exist.",
		"FAIL api: cannot load the Kubernetes client configuration: ",
		"SKIP rights: there is no Kubernetes client configuration\n",
		"SKIP secret-watch: there is no Kubernetes client configuration\n",
		"SKIP leader-election: there is no Kubernetes client configuration\n",
		"SKIP csidriver: there is no Kubernetes client configuration\n",
		"SKIP csinodes: there is no Kubernetes client configuration\n",
		"SKIP attachments: there is no Kubernetes client configuration\n",
		"doctor: BROKEN: 0 ok, 0 warnings, 2 failed, 6 skipped\n",
	))
	g.Expect(stderr.String()).To(BeEmpty())
}

// corev1PVSpec is the spec of an inline (migrated) volume.
var corev1PVSpec = corev1.PersistentVolumeSpec{}

// ContainSubstringsInOrder matches a string holding each of subs, in order.
func ContainSubstringsInOrder(subs ...string) types.GomegaMatcher {
	return gcustom.MakeMatcher(func(s string) (bool, error) {
		rest := s
		for _, sub := range subs {
			i := strings.Index(rest, sub)
			if i < 0 {
				return false, nil
			}
			rest = rest[i+len(sub):]
		}
		return true, nil
	}).WithTemplate("Expected\n{{.FormattedActual}}\n{{.To}} contain, in order, {{format .Data 1}}", subs)
}

// statuses lists the verdicts of results.
func statuses(results []Result) []Status {
	out := []Status{}
	for _, r := range results {
		out = append(out, r.Status)
	}
	return out
}

// render prints results as the text output does, without the summary.
func render(results []Result) string {
	var b strings.Builder
	p := &printer{w: &b}
	p.add(results...)
	return b.String()
}

// mustRights is for the rights of the embedded roles, which parse.
func mustRights(rs []rights.Right, err error) []rights.Right {
	if err != nil {
		panic(err)
	}
	return rs
}
