// Package volumeattachment attaches and detaches the volumes of one CSI
// driver: Reconciler (for drivers with ControllerPublishVolume) calls
// ControllerPublishVolume / ControllerUnpublishVolume and keeps the
// VolumeAttachment's finalizer, node-ID annotation and status right;
// TrivialReconciler (for drivers without it) only marks attachments
// attached. main.go picks one of them once, from the driver's capabilities.
//
// Where each rule lives:
//   - attach.go: the attach sequence (checks before writes, PV finalizer,
//     VA finalizer with the node-ID annotation, publish, status).
//   - detach.go: the detach sequence (unpublish, finalizer, status).
//   - reconciler.go: the two lanes and Reconcile's dispatch.
//   - retry.go: the retry policy by error (backoff, final gRPC errors,
//     terminal errors, a busy node, and the quiet recheck of a cache
//     older than our own write, VolumeAttachment and PV alike).
//   - failure.go: how a failure shows (status, Event, metric).
//   - patch.go: the writes, metadata JSON patches and status merge
//     patches, each remembered for freshness.
//   - lock.go: one operation per VolumeAttachment at a time.
//   - limits.go: --max-inflight-per-node, and the call slot every CSI
//     call takes before any other work.
//   - callbound.go: the adaptive --max-inflight bound, lowered only when
//     the driver throttles the whole cluster, never for full nodes.
//   - wake.go: queueing again an attachment refused for a busy node.
//   - shutdown.go: no CSI call starts after SIGTERM, nor while the Lease
//     renewal is overdue; the hold after an unclean takeover.
//   - latency.go: when an operation started, for the latency metrics.
//   - secret_watch.go, driver_back.go: retrying at once when a Secret
//     changes or the driver comes back.
package volumeattachment
