// Package cache sets up what the attacher's controllers read from: the
// Manager's cache options with a transform per kind that trims each object
// on arrival to what the reconcilers read (trim.go, secrets.go), the field
// indexes that turn "which attachments use this PV, node or Secret" into
// lookups (indexes.go), the readiness check that fails until every informer
// has synced (readiness.go), and the informer hooks the per-object maps use
// to forget deleted objects (ondelete.go).
package cache
