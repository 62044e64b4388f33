package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// Mode is how the attacher runs against its driver.
type Mode string

const (
	// ModeFull is the mode of a driver with ControllerPublishVolume:
	// ControllerPublishVolume on attach, ControllerUnpublishVolume on detach.
	ModeFull Mode = "full"
	// ModeTrivial is the mode of a driver without it: VolumeAttachments are
	// marked attached without any CSI call.
	ModeTrivial Mode = "trivial"
)

// Grants are the API server's answers on the optional rights a Plan
// depends on. The required rights are not among them: the attacher runs
// the same controllers without them, only not ready (rights.Monitor).
type Grants struct {
	// SecretWatch are the reviews of rights.SecretWatchRights (list and
	// watch on Secrets in all namespaces); empty when they were not
	// reviewed, which counts as not granted.
	SecretWatch []rights.RightCheck
	// SecretWatchErr is set when those rights could not even be listed
	// (the embedded role does not parse).
	SecretWatchErr error
}

// ReviewGrants asks the API server, through review, for the optional rights
// the plan of a driver with caps depends on: none for a trivial driver,
// which reads no Secrets.
func ReviewGrants(ctx context.Context, review rights.Reviewer, caps csi.Capabilities) Grants {
	if caps.Trivial() {
		return Grants{}
	}
	watch, err := rights.SecretWatchRights()
	if err != nil {
		return Grants{SecretWatchErr: err}
	}
	return Grants{SecretWatch: rights.ReviewRights(ctx, review, watch)}
}

// Plan is what runs, decided once at start from the driver's capabilities
// and the granted rights: the mode, the drift pass, the Secret watch. Setup
// applies it; the start-up log and the doctor print it, in the sentences
// of this file.
type Plan struct {
	// Capabilities are the driver's, as read at connect.
	Capabilities csi.Capabilities
	// Mode is full or trivial.
	Mode Mode
	// Drift runs the ListVolumes drift pass: a full driver with
	// LIST_VOLUMES and LIST_VOLUMES_PUBLISHED_NODES.
	Drift bool
	// SecretWatch runs the Secret watch (see
	// volumeattachment.Reconciler.WatchSecrets): a full driver, and list
	// and watch on Secrets granted. The watch must only run when it may:
	// the cache waits for every informer to sync before any controller
	// starts, and an informer that is refused its list never syncs. A
	// review that failed therefore counts as no.
	SecretWatch bool

	grants Grants
}

// NewPlan decides what runs against a driver with caps, given the grants.
func NewPlan(caps csi.Capabilities, grants Grants) Plan {
	p := Plan{Capabilities: caps, Mode: ModeFull, grants: grants}
	if caps.Trivial() {
		// Nothing to call, nothing to undo, no Secrets to read.
		p.Mode = ModeTrivial
		return p
	}
	p.Drift = caps.ListVolumes && caps.ListVolumesPublishedNodes
	granted, err := p.secretWatchGranted()
	p.SecretWatch = err == nil && granted
	return p
}

// secretWatchGranted tells whether every right of the Secret watch was
// reviewed and granted; the error is that of a review that failed.
func (p Plan) secretWatchGranted() (bool, error) {
	if p.grants.SecretWatchErr != nil {
		return false, p.grants.SecretWatchErr
	}
	if len(p.grants.SecretWatch) == 0 {
		return false, nil
	}
	return rights.AllGranted(p.grants.SecretWatch)
}

// SecretWatchError is why the attacher cannot tell whether it may watch
// Secrets (a review that failed), nil when it can.
func (p Plan) SecretWatchError() error {
	if p.Mode == ModeTrivial {
		return nil
	}
	_, err := p.secretWatchGranted()
	return err
}

// Verdict is one decision of the plan in the doctor's terms: a status, a
// sentence that says what runs and why, and the items behind it.
type Verdict struct {
	Status  rights.Status
	Message string
	Details []string
}

// ModeLog is the mode as the start-up log says it.
func (p Plan) ModeLog() string {
	if p.Mode == ModeTrivial {
		return "trivial (no ControllerPublishVolume)"
	}
	return string(ModeFull)
}

// trivialAdvice ends the sentence of either trivial mode.
const trivialAdvice = ", so VolumeAttachments are marked attached without calling it " +
	"(a driver that needs no attach usually sets attachRequired: false in its CSIDriver instead)"

// ModeVerdict is the mode as the doctor says it, with how readonly and the
// access modes are passed on.
func (p Plan) ModeVerdict() Verdict {
	caps := p.Capabilities
	v := Verdict{Status: rights.StatusOK}
	switch {
	case !caps.ControllerService:
		v.Message = "trivial: the driver has no CONTROLLER_SERVICE" + trivialAdvice
		return v
	case !caps.PublishUnpublish:
		v.Message = "trivial: the driver lacks PUBLISH_UNPUBLISH_VOLUME" + trivialAdvice
		return v
	}
	v.Message = "full: ControllerPublishVolume on attach, ControllerUnpublishVolume on detach"
	if caps.PublishReadonly {
		v.Details = append(v.Details, "readonly: passed through to ControllerPublishVolume (PUBLISH_READONLY)")
	} else {
		v.Details = append(v.Details, "readonly: never sent, the driver lacks PUBLISH_READONLY (the kubelet still mounts read-only)")
	}
	if caps.SingleNodeMultiWriter {
		v.Details = append(v.Details, "access modes: ReadWriteOnce -> SINGLE_NODE_MULTI_WRITER, "+
			"ReadWriteOncePod -> SINGLE_NODE_SINGLE_WRITER (SINGLE_NODE_MULTI_WRITER)")
	} else {
		v.Details = append(v.Details, "access modes: ReadWriteOnce and ReadWriteOncePod -> SINGLE_NODE_WRITER "+
			"(the driver lacks SINGLE_NODE_MULTI_WRITER)")
	}
	return v
}

// The Secret watch's sentences: without the watch a fixed Secret waits for
// the attachment's next retry.
const (
	secretWatchOnLog  = "Secret changes retry attachments at once (RBAC grants list and watch on secrets)"
	secretWatchOffLog = "Cannot watch Secrets (RBAC grants get only): a fixed Secret is picked up at the next retry, within --retry-interval-max"
	secretWatchErrLog = "Cannot tell whether Secrets may be watched: a fixed Secret is picked up at the next retry, within --retry-interval-max"
	secretWatchOn     = "Secret watch on: a created or fixed controllerPublish Secret retries its VolumeAttachments at once"
	secretWatchOff    = "Secret watch off (the shipped RBAC grants get on secrets only, by design): " +
		"a fixed Secret is picked up at the next retry, within --retry-interval-max (%s); apply " +
		"config/rbac/secret_watch_role.yaml and secret_watch_role_binding.yaml for immediate retries"
	secretWatchErr = "%s. The attacher counts a failed review as no Secret watch: a fixed Secret " +
		"is then picked up at the next retry, within --retry-interval-max (%s)"
	secretWatchTrivial   = "trivial mode: the attacher never calls ControllerPublishVolume, so it reads no Secrets and never watches them"
	secretWatchUnchecked = "no rights were checked"
)

// LogSecretWatch says at start which way the attacher runs, with or
// without the Secret watch; retryMax is --retry-interval-max, the longest
// wait for a fixed Secret without it. A trivial driver reads no Secrets:
// nothing is said.
func (p Plan) LogSecretWatch(log logr.Logger, retryMax time.Duration) {
	if p.Mode == ModeTrivial {
		return
	}
	switch err := p.SecretWatchError(); {
	case err != nil:
		log.Error(err, secretWatchErrLog, "retryIntervalMax", retryMax.String())
	case p.SecretWatch:
		log.Info(secretWatchOnLog)
	default:
		log.Info(secretWatchOffLog, "retryIntervalMax", retryMax.String())
	}
}

// SecretWatchVerdict is the Secret watch as the doctor says it. Both ways
// are supported setups, so both are OK; a failed review is a WARN because
// the attacher counts it as no watch, and rights that cannot be listed a
// FAIL. retryMax is --retry-interval-max.
func (p Plan) SecretWatchVerdict(retryMax time.Duration) Verdict {
	switch {
	case p.Mode == ModeTrivial:
		return Verdict{Status: rights.StatusSkip, Message: secretWatchTrivial}
	case p.grants.SecretWatchErr != nil:
		return Verdict{Status: rights.StatusFail, Message: p.grants.SecretWatchErr.Error()}
	case len(p.grants.SecretWatch) == 0:
		return Verdict{Status: rights.StatusSkip, Message: secretWatchUnchecked}
	}
	var errs, denied []string
	for _, c := range p.grants.SecretWatch {
		switch {
		case c.Err != nil:
			errs = append(errs, fmt.Sprintf("could not check %s: %v", c.Right, c.Err))
		case !c.Allowed:
			d := "not granted: " + c.Right.String()
			if c.Reason != "" {
				d += " (" + c.Reason + ")"
			}
			denied = append(denied, d)
		}
	}
	switch {
	case len(errs) > 0:
		return Verdict{Status: rights.StatusWarn, Message: fmt.Sprintf(secretWatchErr, strings.Join(errs, "; "), retryMax)}
	case len(denied) > 0:
		return Verdict{Status: rights.StatusOK, Message: fmt.Sprintf(secretWatchOff, retryMax), Details: denied}
	}
	return Verdict{Status: rights.StatusOK, Message: secretWatchOn}
}
