package options

// Feature gate names accepted by --feature-gates. They are the reference
// attacher's gates, so its manifests parse unchanged.
const (
	// FeatureMutableCSINodeAllocatableCount fills errorCode in
	// status.attachError and detachError with the gRPC code of the failed
	// CSI call. GA upstream, on by default; off leaves errorCode out.
	FeatureMutableCSINodeAllocatableCount = "MutableCSINodeAllocatableCount"
	// FeatureReleaseLeaderElectionOnExit releases the leader-election Lease on
	// SIGTERM/SIGINT after in-flight work has finished, so a standby takes
	// over at once. Alpha and off upstream; on here, because a prompt
	// hand-over is part of the product. Off leaves the Lease to expire, as
	// the reference does by default.
	FeatureReleaseLeaderElectionOnExit = "ReleaseLeaderElectionOnExit"
)

// DefaultFeatureGates returns a new map with every known feature gate at its
// default value.
func DefaultFeatureGates() map[string]bool {
	return map[string]bool{
		FeatureMutableCSINodeAllocatableCount: true,
		FeatureReleaseLeaderElectionOnExit:    true,
	}
}

// FeatureEnabled reports whether the named feature gate is on. Unknown names
// and Options not built by Parse fall back to the gate defaults.
func (o *Options) FeatureEnabled(name string) bool {
	if v, ok := o.FeatureGates[name]; ok {
		return v
	}
	return DefaultFeatureGates()[name]
}
