package attachment

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Resolver works out what a CSI call for a VolumeAttachment needs: the
// volume's source (its PersistentVolume or inline spec, translated when the
// driver took over an in-tree plugin), the capability, the
// ControllerPublish Secret and the node ID. Attach, detach and the drift
// pass all use it, so they never disagree on which volume and which node an
// attachment stands for. It only reads.
type Resolver struct {
	// Client reads PersistentVolumes and CSINodes from the Manager's cache.
	Client client.Reader
	// APIReader reads Secrets directly: they are never cached, so the
	// attacher needs only "get" on them and holds no copy of every Secret
	// in the cluster.
	APIReader client.Reader
	// Freshness tells a cached PersistentVolume older than our own last
	// write to it. Optional.
	Freshness *freshness.Tracker
	// DriverName is the CSI driver's name.
	DriverName string
	// DefaultFSType fills the mount capability's fs_type when the volume has
	// none (--default-fstype).
	DefaultFSType string
	// PublishReadonly is the driver's PUBLISH_READONLY capability; without it
	// ControllerPublishVolume never asks for a read-only attachment.
	PublishReadonly bool
	// SingleNodeMultiWriter is the driver's SINGLE_NODE_MULTI_WRITER
	// capability, which selects the finer access-mode mapping.
	SingleNodeMultiWriter bool
}

// Source resolves the CSI source of a VolumeAttachment: its
// PersistentVolume from the cache, or its inline spec. pv is nil for inline
// volumes. A cached PV older than our own last write gives an error
// wrapping freshness.ErrCacheBehind.
func (r *Resolver) Source(ctx context.Context, va *storagev1.VolumeAttachment) (volume.Source, *corev1.PersistentVolume, error) {
	pvName, err := volume.PVNameOf(va)
	if err != nil {
		return volume.Source{}, nil, err
	}
	if pvName == "" {
		src, err := volume.InlineSource(va, r.DriverName)
		return src, nil, err
	}
	pv := &corev1.PersistentVolume{}
	fresh, err := r.Freshness.Get(ctx, r.Client, types.NamespacedName{Name: pvName}, pv)
	switch {
	case apierrors.IsNotFound(err):
		return volume.Source{}, nil, fmt.Errorf("PersistentVolume %q not found", pvName)
	case err != nil:
		return volume.Source{}, nil, fmt.Errorf("failed to read PersistentVolume %q: %w", pvName, err)
	case !fresh:
		return volume.Source{}, nil, fmt.Errorf("PersistentVolume %q: %w", pvName, freshness.ErrCacheBehind)
	}
	src, err := volume.PVSource(pv, r.DriverName)
	return src, pv, err
}

// PublishRequest builds the ControllerPublishVolume request for src without
// writing anything; the node ID is the one the node's CSINode gives now.
func (r *Resolver) PublishRequest(ctx context.Context, va *storagev1.VolumeAttachment, src volume.Source) (csi.PublishRequest, error) {
	capability, err := volume.Capability(src.Spec, r.DefaultFSType, r.SingleNodeMultiWriter)
	if err != nil {
		return csi.PublishRequest{}, fmt.Errorf("%s: %w", describe(src), err)
	}
	secrets, err := r.secrets(ctx, src.CSI().ControllerPublishSecretRef)
	if err != nil {
		return csi.PublishRequest{}, err
	}
	nodeID, err := r.nodeIDFromCSINode(ctx, va.Spec.NodeName)
	if err != nil {
		return csi.PublishRequest{}, err
	}
	return csi.PublishRequest{
		VolumeID:      src.CSI().VolumeHandle,
		NodeID:        nodeID,
		Capability:    capability,
		ReadOnly:      src.CSI().ReadOnly && r.PublishReadonly,
		Secrets:       secrets,
		VolumeContext: src.CSI().VolumeAttributes,
		Migrated:      src.Migrated,
	}, nil
}

// UnpublishRequest builds the ControllerUnpublishVolume request: the
// volume's source and Secret as for publish, and the node ID the volume was
// published to (PublishedNodeID).
func (r *Resolver) UnpublishRequest(ctx context.Context, va *storagev1.VolumeAttachment) (csi.UnpublishRequest, error) {
	src, _, err := r.Source(ctx, va)
	if err != nil {
		return csi.UnpublishRequest{}, err
	}
	secrets, err := r.secrets(ctx, src.CSI().ControllerPublishSecretRef)
	if err != nil {
		return csi.UnpublishRequest{}, err
	}
	nodeID, err := r.PublishedNodeID(ctx, va)
	if err != nil {
		return csi.UnpublishRequest{}, err
	}
	return csi.UnpublishRequest{VolumeID: src.CSI().VolumeHandle, NodeID: nodeID, Secrets: secrets, Migrated: src.Migrated}, nil
}

// PublishedNodeID is the node ID a VolumeAttachment's volume was published
// to: the annotation written with our finalizer before
// ControllerPublishVolume, else (an attachment from before the annotation
// existed) the node's CSINode. The annotation comes first because the
// CSINode can change under the same node name: a node that registers again
// gets a new ID, and the volume is still published to the old one.
func (r *Resolver) PublishedNodeID(ctx context.Context, va *storagev1.VolumeAttachment) (string, error) {
	if id := va.Annotations[volume.NodeIDAnnotation]; id != "" {
		return id, nil
	}
	return r.nodeIDFromCSINode(ctx, va.Spec.NodeName)
}

// nodeIDFromCSINode reads the driver's node ID from the node's CSINode.
func (r *Resolver) nodeIDFromCSINode(ctx context.Context, nodeName string) (string, error) {
	if nodeName == "" {
		return "", errors.New("VolumeAttachment has an empty spec.nodeName")
	}
	node := &storagev1.CSINode{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: nodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("CSINode %q not found: driver %s is not registered on node %s yet", nodeName, r.DriverName, nodeName)
		}
		return "", fmt.Errorf("failed to read CSINode %q: %w", nodeName, err)
	}
	return volume.NodeID(node, r.DriverName)
}

// secrets reads the controllerPublishSecretRef with a direct GET.
func (r *Resolver) secrets(ctx context.Context, ref *corev1.SecretReference) (map[string]string, error) {
	if ref == nil {
		return nil, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		return nil, fmt.Errorf("failed to load secret \"%s/%s\": %w", ref.Namespace, ref.Name, err)
	}
	data := make(map[string]string, len(secret.Data))
	for k, v := range secret.Data {
		data[k] = string(v)
	}
	return data, nil
}

func describe(src volume.Source) string {
	if src.Inline() {
		return "inline volume spec"
	}
	return fmt.Sprintf("PersistentVolume %q", src.PVName)
}
