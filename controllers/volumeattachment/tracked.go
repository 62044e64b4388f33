package volumeattachment

// Tracked returns the number of entries in each per-object map the
// reconciler keeps in memory, by the names of the map label of
// csi_attacher_tracked_objects (locks, node_slots, start_times). Every one
// of them forgets an object once it is deleted or once its operation is
// over, so in an idle attacher they are all 0 however many objects came and
// went.
func (r *Reconciler) Tracked() (locks, nodeSlots, startTimes int) {
	return r.locks.len(), r.nodes.len(), r.started.len()
}
