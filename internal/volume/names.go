package volume

import "strings"

const (
	// FinalizerPrefix starts the finalizer the attacher puts on
	// VolumeAttachments and PersistentVolumes. The full name carries the
	// sanitized driver name, so that attachers of several drivers can share
	// one object and so that objects written by the reference attacher are
	// recognised as ours.
	FinalizerPrefix = "external-attacher/"

	// NodeIDAnnotation records on a VolumeAttachment the CSI node ID it was
	// published to, so detach still works after the CSINode is gone.
	NodeIDAnnotation = "csi.alpha.kubernetes.io/node-id"

	// MigratedToAnnotation names, on an in-tree PersistentVolume, the CSI
	// driver that has taken it over.
	MigratedToAnnotation = "pv.kubernetes.io/migrated-to"
)

// SanitizeDriverName turns a CSI driver name into something usable in a
// finalizer or object name (the leader-election Lease's too, see
// leader.LeaseName): every character outside [a-zA-Z0-9-] becomes
// '-', and a trailing '-' gets an 'X' appended so the result never ends in a
// separator. The rule is the reference attacher's, kept bit for bit because
// the finalizers it produces live on objects shared with that attacher.
func SanitizeDriverName(driver string) string {
	var b strings.Builder
	b.Grow(len(driver) + 1)
	for _, r := range driver {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if strings.HasSuffix(s, "-") {
		s += "X"
	}
	return s
}

// FinalizerName is the finalizer for a driver, e.g.
// "external-attacher/hostpath-csi-k8s-io" for "hostpath.csi.k8s.io".
func FinalizerName(driver string) string {
	return FinalizerPrefix + SanitizeDriverName(driver)
}
