// Package metrics defines the attacher's own Prometheus metrics, all named
// csi_attacher_*, and the small API the reconcilers call to record them.
//
// The metrics answer the questions an operator has when volumes are slow to
// attach: is the driver reachable and ready, how long do attaches and
// detaches take end to end, which gRPC errors does the driver return, how
// many VolumeAttachments are attached, waiting, detaching or failed, and
// (for drivers that list their volumes) how often attachments changed on the
// backend behind the attacher's back, and how long the oldest attachment
// still pending has waited.
//
// Every metric carries the constant label driver_name, so the metrics of
// several attachers scraped together can be told apart.
//
// The VolumeAttachment gauges are not kept up to date by the reconcilers:
// the counts by state and the age of the oldest pending attach and detach
// are computed on every scrape from one pass over the objects, by a
// SnapshotSource the caller supplies (CacheSnapshot over the informer cache,
// using Tally), so they can never drift from the objects. The age is what
// catches an attachment that fails forever: it grows however seldom the
// attachment is retried.
//
// csi_attacher_max_inflight follows the adaptive bound of CSI calls in
// flight (SetMaxInflight, called by the VolumeAttachment reconciler) and
// csi_attacher_build_info says which build runs (SetBuildInfo, from main).
//
// The CSI call histogram csi_sidecar_operations_seconds, kept compatible
// with the reference attacher, lives in package csi, not here.
package metrics
