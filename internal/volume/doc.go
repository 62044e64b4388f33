// Package volume holds the pure translations the attacher makes between
// Kubernetes objects and CSI requests: the names it writes on objects
// (finalizer, annotation, Lease), the CSI source of a VolumeAttachment, the
// volume capability and access mode derived from a PersistentVolume spec, and
// the node ID taken from a CSINode.
//
// Nothing here talks to the API server or the driver, so every function is
// covered by table tests and, where the input comes from users, by fuzz
// targets.
package volume
