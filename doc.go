// Command csi-attacher attaches and detaches the volumes of one CSI driver:
// it watches VolumeAttachments whose spec.attacher names the driver and calls
// ControllerPublishVolume / ControllerUnpublishVolume on the driver's socket.
// It is a drop-in replacement for the kubernetes-csi external-attacher
// sidecar: same flags, finalizers, annotation, Lease and metric names.
package main
