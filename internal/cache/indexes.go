package cache

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// IndexVAByPV indexes VolumeAttachments by spec.source.persistentVolumeName,
	// so "which attachments use this PV" is a lookup, not a scan.
	IndexVAByPV = "spec.source.persistentVolumeName"
	// IndexVAByNode indexes VolumeAttachments by spec.nodeName, so a CSINode
	// that appears or changes wakes exactly the attachments waiting for it.
	IndexVAByNode = "spec.nodeName"
	// IndexPVByPublishSecret indexes PersistentVolumes by the
	// "namespace/name" of spec.csi.controllerPublishSecretRef, the first
	// step from a Secret to the attachments that need it.
	IndexPVByPublishSecret = "spec.csi.controllerPublishSecretRef"
	// IndexVAByInlinePublishSecret indexes VolumeAttachments by the
	// "namespace/name" of their inline spec's csi.controllerPublishSecretRef:
	// inline volumes have no PV to go through.
	IndexVAByInlinePublishSecret = "spec.source.inlineVolumeSpec.csi.controllerPublishSecretRef"
)

// Indexer is the part of a Manager's field indexer the setup needs.
type Indexer interface {
	IndexField(ctx context.Context, obj client.Object, field string, extractValue client.IndexerFunc) error
}

// SetupIndexes registers the field indexes the reconcilers of driver use.
// Call it once per Manager, before adding the reconcilers.
//
// Only the PersistentVolume index covers the VolumeAttachments of every
// driver (a PV keeps our finalizer while any attachment names it); the
// others hold ours alone, so their size follows our volumes, not the
// cluster's.
func SetupIndexes(ctx context.Context, indexer Indexer, driver string) error {
	ours := func(extract client.IndexerFunc) client.IndexerFunc {
		return func(o client.Object) []string {
			if va, ok := o.(*storagev1.VolumeAttachment); !ok || va.Spec.Attacher != driver {
				return nil
			}
			return extract(o)
		}
	}
	for _, ix := range []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&storagev1.VolumeAttachment{}, IndexVAByPV, PVOf},
		{&storagev1.VolumeAttachment{}, IndexVAByNode, ours(vaByNode)},
		{&storagev1.VolumeAttachment{}, IndexVAByInlinePublishSecret, ours(vaByInlinePublishSecret)},
		{&corev1.PersistentVolume{}, IndexPVByPublishSecret, pvByPublishSecret},
	} {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return err
		}
	}
	return nil
}

// PVOf is the name of the PersistentVolume a VolumeAttachment names, as
// the PersistentVolume index reads it: none for inline volumes.
func PVOf(o client.Object) []string {
	va, ok := o.(*storagev1.VolumeAttachment)
	if !ok || va.Spec.Source.PersistentVolumeName == nil || *va.Spec.Source.PersistentVolumeName == "" {
		return nil
	}
	return []string{*va.Spec.Source.PersistentVolumeName}
}

func vaByNode(o client.Object) []string {
	va, ok := o.(*storagev1.VolumeAttachment)
	if !ok || va.Spec.NodeName == "" {
		return nil
	}
	return []string{va.Spec.NodeName}
}

func vaByInlinePublishSecret(o client.Object) []string {
	va, ok := o.(*storagev1.VolumeAttachment)
	if !ok || va.Spec.Source.InlineVolumeSpec == nil || va.Spec.Source.InlineVolumeSpec.CSI == nil {
		return nil
	}
	return secretRefKeys(va.Spec.Source.InlineVolumeSpec.CSI.ControllerPublishSecretRef)
}

func pvByPublishSecret(o client.Object) []string {
	pv, ok := o.(*corev1.PersistentVolume)
	if !ok || pv.Spec.CSI == nil {
		return nil
	}
	return secretRefKeys(pv.Spec.CSI.ControllerPublishSecretRef)
}

// secretRefKeys is the index value of a Secret reference: none for a
// missing or unnamed reference.
func secretRefKeys(ref *corev1.SecretReference) []string {
	if ref == nil || ref.Name == "" {
		return nil
	}
	return []string{SecretKey(ref.Namespace, ref.Name)}
}

// SecretKey is how the Secret indexes name a Secret.
func SecretKey(namespace, name string) string {
	return namespace + "/" + name
}
