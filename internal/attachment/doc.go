// Package attachment resolves what an operation on a VolumeAttachment
// needs (source, capability, Secret, node ID) in one place, for attach,
// detach and the drift pass alike. The node-ID rule lives here:
// PublishedNodeID.
package attachment
