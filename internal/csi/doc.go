// Package csi is the attacher's client of the CSI driver: one gRPC
// connection shared by every reconciler.
//
// It owns everything between the reconcilers and the driver socket:
//
//   - parsing --csi-address (ParseAddress);
//   - connecting without ever giving up on a lost connection: gRPC
//     reconnects by itself, the health monitor keeps a ready flag for
//     /readyz, and callers see Unavailable in the meantime;
//   - waiting at start-up until the driver answers Probe with ready, then
//     reading its name and capabilities once (Connect);
//   - ControllerPublishVolume / ControllerUnpublishVolume / ListVolumes,
//     each bounded by the configured timeout (Client implements Attacher);
//   - error classification (IsFinalError, Code);
//   - the csi_sidecar_operations_seconds histogram, compatible with the
//     reference attacher's dashboards;
//   - gRPC logging with every field marked csi_secret replaced by
//     "***stripped***" (Sanitize), whatever the log level.
package csi
