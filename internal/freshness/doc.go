// Package freshness remembers the resourceVersion of each object the
// attacher has just written, so a reconcile can tell that the informer cache
// still holds an older copy of it.
//
// controller-runtime reads from a cache that lags behind the reconciler's own
// writes. Acting on the older copy repeats work: a second ControllerPublish
// for a volume that was just marked attached, or a second finalizer patch.
// A reconcile that finds its cached copy older than its last write stops and
// waits for the newer copy, whose arrival triggers the next reconcile.
package freshness
