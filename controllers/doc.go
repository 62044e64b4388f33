// Package controllers holds the two reconcilers csi-attacher runs in one
// controller-runtime Manager:
//
//   - VolumeAttachmentReconciler attaches and detaches the volumes of one CSI
//     driver: it calls ControllerPublishVolume / ControllerUnpublishVolume
//     and keeps the VolumeAttachment's finalizer, node-ID annotation and
//     status right.
//   - PersistentVolumeReconciler removes the attacher's finalizer from a
//     PersistentVolume that is being deleted once no VolumeAttachment needs
//     it any more.
//
// Both share one CSI client and the field indexes registered by
// SetupIndexes.
package controllers
