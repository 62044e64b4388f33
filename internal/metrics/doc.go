// Package metrics defines the attacher's own Prometheus metrics, all named
// csi_attacher_*, and the small API the reconcilers call to record them.
//
// The metrics answer the questions an operator has when volumes are slow to
// attach: is the driver reachable and ready, how long do attaches and
// detaches take end to end, which gRPC errors does the driver return, how
// many VolumeAttachments are attached, waiting, detaching or failed, and
// (for drivers that list their volumes) how often attachments changed on the
// backend behind the attacher's back.
//
// Every metric carries the constant label driver_name, so the metrics of
// several attachers scraped together can be told apart.
//
// The VolumeAttachment state gauges are not kept up to date by the
// reconcilers: they are computed on every scrape by a StateCounter the
// caller supplies (typically a count over the informer cache, using State or
// Count), so they can never drift from the objects.
//
// The CSI call histogram csi_sidecar_operations_seconds, kept compatible
// with the reference attacher, lives in package csi, not here.
package metrics
