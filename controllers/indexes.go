package controllers

import (
	"context"

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
)

// Indexer is the part of a Manager's field indexer the setup needs.
type Indexer interface {
	IndexField(ctx context.Context, obj client.Object, field string, extractValue client.IndexerFunc) error
}

// SetupIndexes registers the VolumeAttachment field indexes both
// reconcilers use. Call it once per Manager, before adding the reconcilers.
func SetupIndexes(ctx context.Context, indexer Indexer) error {
	if err := indexer.IndexField(ctx, &storagev1.VolumeAttachment{}, IndexVAByPV, func(o client.Object) []string {
		va, ok := o.(*storagev1.VolumeAttachment)
		if !ok || va.Spec.Source.PersistentVolumeName == nil || *va.Spec.Source.PersistentVolumeName == "" {
			return nil
		}
		return []string{*va.Spec.Source.PersistentVolumeName}
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &storagev1.VolumeAttachment{}, IndexVAByNode, func(o client.Object) []string {
		va, ok := o.(*storagev1.VolumeAttachment)
		if !ok || va.Spec.NodeName == "" {
			return nil
		}
		return []string{va.Spec.NodeName}
	})
}
