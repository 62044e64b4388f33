package controllers

// Names of the per-object maps TrackedObjects reports, and the values of the
// map label of csi_attacher_tracked_objects.
const (
	TrackedFreshness  = "freshness"
	TrackedForceSync  = "force_sync"
	TrackedStartTimes = "start_times"
	TrackedLocks      = "locks"
	TrackedNodeSlots  = "node_slots"
)

// TrackedObjects returns the number of entries in each per-object map the
// reconciler keeps in memory, by name. Every one of them forgets an object
// once it is deleted (or once its operation is over), so in an idle
// attacher they are all 0 however many objects came and went. The
// freshness tracker is shared with the PersistentVolume reconciler, so it
// counts both kinds.
func (r *VolumeAttachmentReconciler) TrackedObjects() map[string]int {
	return map[string]int{
		TrackedFreshness:  r.Freshness.Len(),
		TrackedForceSync:  r.force.len(),
		TrackedStartTimes: r.started.len(),
		TrackedLocks:      r.locks.len(),
		TrackedNodeSlots:  r.nodes.len(),
	}
}
