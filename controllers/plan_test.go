package controllers_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// secretWatchChecks are reviews of rights.SecretWatchRights: list, then
// watch, with the answers given.
func secretWatchChecks(t *testing.T, list, watch rights.RightCheck) []rights.RightCheck {
	t.Helper()
	rs, err := rights.SecretWatchRights()
	if err != nil || len(rs) != 2 {
		t.Fatalf("SecretWatchRights() = %v, %v; want list and watch", rs, err)
	}
	list.Right, watch.Right = rs[0], rs[1]
	return []rights.RightCheck{list, watch}
}

func TestNewPlan(t *testing.T) {
	full := csi.Capabilities{ControllerService: true, PublishUnpublish: true}
	lists := full
	lists.ListVolumes, lists.ListVolumesPublishedNodes = true, true
	granted := secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{Allowed: true})
	tests := []struct {
		name        string
		caps        csi.Capabilities
		grants      controllers.Grants
		mode        controllers.Mode
		drift       bool
		secretWatch bool
	}{
		{name: "no CONTROLLER_SERVICE is trivial", caps: csi.Capabilities{PublishUnpublish: true, ListVolumes: true, ListVolumesPublishedNodes: true},
			grants: controllers.Grants{SecretWatch: granted}, mode: controllers.ModeTrivial},
		{name: "no PUBLISH_UNPUBLISH_VOLUME is trivial, drift and the watch too are off",
			caps:   csi.Capabilities{ControllerService: true, ListVolumes: true, ListVolumesPublishedNodes: true},
			grants: controllers.Grants{SecretWatch: granted}, mode: controllers.ModeTrivial},
		{name: "full, nothing granted", caps: full, mode: controllers.ModeFull},
		{name: "full, Secret watch granted", caps: full, grants: controllers.Grants{SecretWatch: granted},
			mode: controllers.ModeFull, secretWatch: true},
		{name: "list granted, watch not", caps: full,
			grants: controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{})},
			mode:   controllers.ModeFull},
		{name: "a failed review counts as no", caps: full,
			grants: controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{Err: errors.New("timeout")})},
			mode:   controllers.ModeFull},
		{name: "rights that cannot be listed count as no", caps: full,
			grants: controllers.Grants{SecretWatchErr: errors.New("bad role")}, mode: controllers.ModeFull},
		{name: "drift needs LIST_VOLUMES and LIST_VOLUMES_PUBLISHED_NODES", caps: lists, mode: controllers.ModeFull, drift: true},
		{name: "LIST_VOLUMES alone runs no drift pass",
			caps: csi.Capabilities{ControllerService: true, PublishUnpublish: true, ListVolumes: true}, mode: controllers.ModeFull},
		{name: "LIST_VOLUMES_PUBLISHED_NODES alone runs no drift pass",
			caps: csi.Capabilities{ControllerService: true, PublishUnpublish: true, ListVolumesPublishedNodes: true}, mode: controllers.ModeFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			p := controllers.NewPlan(tt.caps, tt.grants)
			g.Expect(p.Capabilities).To(Equal(tt.caps))
			g.Expect(p.Mode).To(Equal(tt.mode))
			g.Expect(p.Drift).To(Equal(tt.drift), "drift pass")
			g.Expect(p.SecretWatch).To(Equal(tt.secretWatch), "Secret watch")
		})
	}
}

func TestPlanModeSentences(t *testing.T) {
	tests := []struct {
		name    string
		caps    csi.Capabilities
		log     string
		message string
		details []string
	}{
		{name: "no controller service", caps: csi.Capabilities{}, log: "trivial (no ControllerPublishVolume)",
			message: "trivial: the driver has no CONTROLLER_SERVICE, so VolumeAttachments are marked attached without calling it " +
				"(a driver that needs no attach usually sets attachRequired: false in its CSIDriver instead)"},
		{name: "no publish", caps: csi.Capabilities{ControllerService: true, PublishReadonly: true}, log: "trivial (no ControllerPublishVolume)",
			message: "trivial: the driver lacks PUBLISH_UNPUBLISH_VOLUME, so VolumeAttachments are marked attached without calling it " +
				"(a driver that needs no attach usually sets attachRequired: false in its CSIDriver instead)"},
		{name: "full with readonly and SINGLE_NODE_MULTI_WRITER",
			caps: csi.Capabilities{ControllerService: true, PublishUnpublish: true, PublishReadonly: true, SingleNodeMultiWriter: true},
			log:  "full", message: "full: ControllerPublishVolume on attach, ControllerUnpublishVolume on detach",
			details: []string{"readonly: passed through to ControllerPublishVolume (PUBLISH_READONLY)",
				"access modes: ReadWriteOnce -> SINGLE_NODE_MULTI_WRITER, ReadWriteOncePod -> SINGLE_NODE_SINGLE_WRITER (SINGLE_NODE_MULTI_WRITER)"}},
		{name: "full without them", caps: csi.Capabilities{ControllerService: true, PublishUnpublish: true},
			log: "full", message: "full: ControllerPublishVolume on attach, ControllerUnpublishVolume on detach",
			details: []string{"readonly: never sent, the driver lacks PUBLISH_READONLY (the kubelet still mounts read-only)",
				"access modes: ReadWriteOnce and ReadWriteOncePod -> SINGLE_NODE_WRITER (the driver lacks SINGLE_NODE_MULTI_WRITER)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			p := controllers.NewPlan(tt.caps, controllers.Grants{})
			g.Expect(p.ModeLog()).To(Equal(tt.log))
			v := p.ModeVerdict()
			g.Expect(v.Status).To(Equal(rights.StatusOK))
			g.Expect(v.Message).To(Equal(tt.message))
			g.Expect(v.Details).To(Equal(tt.details))
		})
	}
}

// TestPlanSecretWatchSentences: what the start-up log and the doctor say
// about the Secret watch, for each answer of the reviews.
func TestPlanSecretWatchSentences(t *testing.T) {
	full := csi.Capabilities{ControllerService: true, PublishUnpublish: true}
	tests := []struct {
		name    string
		caps    csi.Capabilities
		grants  controllers.Grants
		log     string // "" when nothing is logged
		status  rights.Status
		message string
		details []string
	}{
		{name: "granted", caps: full,
			grants: controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{Allowed: true})},
			log:    `"level"=0 "msg"="Secret changes retry attachments at once (RBAC grants list and watch on secrets)"`,
			status: rights.StatusOK, message: "Secret watch on: a created or fixed controllerPublish Secret retries its VolumeAttachments at once"},
		{name: "denied", caps: full,
			grants: controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{}, rights.RightCheck{Reason: "no RBAC policy matched"})},
			log: `"level"=0 "msg"="Cannot watch Secrets (RBAC grants get only): a fixed Secret is picked up at the next retry, ` +
				`within --retry-interval-max" "retryIntervalMax"="30s"`,
			status: rights.StatusOK,
			message: "Secret watch off (the shipped RBAC grants get on secrets only, by design): a fixed Secret is picked up at the " +
				"next retry, within --retry-interval-max (30s); apply config/rbac/secret_watch_role.yaml and " +
				"secret_watch_role_binding.yaml for immediate retries",
			details: []string{"not granted: list secrets", "not granted: watch secrets (no RBAC policy matched)"}},
		{name: "review failed", caps: full,
			grants: controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{Err: errors.New("timeout")})},
			log: `"msg"="Cannot tell whether Secrets may be watched: a fixed Secret is picked up at the next retry, within ` +
				`--retry-interval-max" "error"="failed to review the right to watch secrets: timeout" "retryIntervalMax"="30s"`,
			status: rights.StatusWarn,
			message: "could not check watch secrets: timeout. The attacher counts a failed review as no Secret watch: a fixed " +
				"Secret is then picked up at the next retry, within --retry-interval-max (30s)"},
		{name: "rights not listed", caps: full, grants: controllers.Grants{SecretWatchErr: errors.New("bad role")},
			log: `"msg"="Cannot tell whether Secrets may be watched: a fixed Secret is picked up at the next retry, within ` +
				`--retry-interval-max" "error"="bad role" "retryIntervalMax"="30s"`,
			status: rights.StatusFail, message: "bad role"},
		{name: "not reviewed", caps: full,
			log: `"level"=0 "msg"="Cannot watch Secrets (RBAC grants get only): a fixed Secret is picked up at the next retry, ` +
				`within --retry-interval-max" "retryIntervalMax"="30s"`,
			status: rights.StatusSkip, message: "no rights were checked"},
		{name: "trivial", caps: csi.Capabilities{ControllerService: true},
			grants:  controllers.Grants{SecretWatch: secretWatchChecks(t, rights.RightCheck{Allowed: true}, rights.RightCheck{Allowed: true})},
			status:  rights.StatusSkip,
			message: "trivial mode: the attacher never calls ControllerPublishVolume, so it reads no Secrets and never watches them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			p := controllers.NewPlan(tt.caps, tt.grants)
			var buf bytes.Buffer
			p.LogSecretWatch(funcr.New(func(prefix, args string) { buf.WriteString(args) }, funcr.Options{}), 30*time.Second)
			g.Expect(buf.String()).To(Equal(tt.log))
			v := p.SecretWatchVerdict(30 * time.Second)
			g.Expect(v.Status).To(Equal(tt.status))
			g.Expect(v.Message).To(Equal(tt.message))
			g.Expect(v.Details).To(Equal(tt.details))
		})
	}
}
