package csi

import (
	"context"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
)

// Capabilities are the driver capabilities that decide how the attacher runs.
// They are read once at start-up.
type Capabilities struct {
	// ControllerService is the plugin capability CONTROLLER_SERVICE.
	ControllerService bool
	// PublishUnpublish is PUBLISH_UNPUBLISH_VOLUME; without it the attacher
	// runs in trivial mode (marks VolumeAttachments attached, no CSI calls).
	PublishUnpublish bool
	// PublishReadonly is PUBLISH_READONLY; without it readonly is never sent.
	PublishReadonly bool
	// ListVolumes and ListVolumesPublishedNodes together enable the
	// ListVolumes reconciliation pass.
	ListVolumes               bool
	ListVolumesPublishedNodes bool
	// SingleNodeMultiWriter selects the access-mode mapping that uses
	// SINGLE_NODE_SINGLE_WRITER / SINGLE_NODE_MULTI_WRITER.
	SingleNodeMultiWriter bool
}

// Trivial tells whether the attacher runs in trivial mode against these
// capabilities: VolumeAttachments are marked attached without any CSI call.
func (c Capabilities) Trivial() bool { return !c.ControllerService || !c.PublishUnpublish }

// PublishRequest is one ControllerPublishVolume call in plain Go terms.
type PublishRequest struct {
	VolumeID      string
	NodeID        string
	Capability    *csipb.VolumeCapability
	ReadOnly      bool
	Secrets       map[string]string
	VolumeContext map[string]string
	// Migrated marks a volume translated from an in-tree plugin; it only
	// feeds the "migrated" metric label.
	Migrated bool
}

// UnpublishRequest is one ControllerUnpublishVolume call in plain Go terms.
type UnpublishRequest struct {
	VolumeID string
	NodeID   string
	Secrets  map[string]string
	Migrated bool
}

// Attacher is what the reconcilers need from the driver. Both reconcilers
// share one implementation. Every call is bounded by the client's
// configured operation timeout; the caller's context may shorten it.
type Attacher interface {
	// Publish calls ControllerPublishVolume and returns the publish context.
	// A returned error may still mean "attached" (see IsFinalError): the
	// caller must keep its finalizer until a later Unpublish succeeds.
	Publish(ctx context.Context, req PublishRequest) (map[string]string, error)
	// Unpublish calls ControllerUnpublishVolume. Every error, NotFound
	// included, is returned: the driver must answer OK for a volume or node
	// it does not know.
	Unpublish(ctx context.Context, req UnpublishRequest) error
}
