// Package controllers wires csi-attacher's controllers into one
// controller-runtime Manager for one CSI driver. main.go chooses the mode
// once, from the driver's capabilities:
//
//   - SetupFull, for a driver with ControllerPublishVolume: the
//     VolumeAttachment controller (controllers/volumeattachment), the
//     PersistentVolume controller (controllers/persistentvolume) and, when
//     the driver can list its volumes, the drift pass (controllers/drift).
//   - SetupTrivial, for a driver without it: one controller that marks
//     attachments attached.
//
// They share one CSI client, the cache set up by internal/cache, and the
// freshness tracker. docs/architecture.md maps each rule to its file.
package controllers
