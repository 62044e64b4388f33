package leader

import "github.com/csi-attacher/csi-attacher/internal/volume"

// LeaseNamePrefix starts the leader-election Lease's name. It is the
// reference attacher's, so that replicas of either elect one leader per
// driver between them.
const LeaseNamePrefix = "external-attacher-leader-"

// LeaseName is the leader-election Lease of a driver, e.g.
// "external-attacher-leader-hostpath-csi-k8s-io" for "hostpath.csi.k8s.io":
// the driver's name sanitized as in its finalizer (volume.SanitizeDriverName).
func LeaseName(driver string) string {
	return LeaseNamePrefix + volume.SanitizeDriverName(driver)
}
