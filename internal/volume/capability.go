package volume

import (
	"fmt"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
)

// AccessMode maps the set of a PersistentVolume's access modes to the one
// CSI access mode that expresses it. singleNodeMultiWriter is the driver's
// SINGLE_NODE_MULTI_WRITER controller capability: with it, ReadWriteOnce
// and ReadWriteOncePod map to the finer SINGLE_NODE_* modes.
func AccessMode(modes []corev1.PersistentVolumeAccessMode, singleNodeMultiWriter bool) (csipb.VolumeCapability_AccessMode_Mode, error) {
	has := func(m corev1.PersistentVolumeAccessMode) bool { return slices.Contains(modes, m) }
	rwop := has(corev1.ReadWriteOncePod)
	rwo := has(corev1.ReadWriteOnce)
	rox := has(corev1.ReadOnlyMany)
	rwx := has(corev1.ReadWriteMany)

	switch {
	case len(modes) == 0:
		return csipb.VolumeCapability_AccessMode_UNKNOWN, ErrNoAccessModes
	case rwop && (rwo || rox || rwx):
		return csipb.VolumeCapability_AccessMode_UNKNOWN, accessModesError("CSI does not support ReadWriteOncePod with other access modes: %v", modes)
	case rwop:
		if singleNodeMultiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER, nil
		}
		return csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	case rwx:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, nil
	case rox && rwo:
		return csipb.VolumeCapability_AccessMode_UNKNOWN, accessModesError("CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume: %v", modes)
	case rox:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, nil
	case rwo:
		if singleNodeMultiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, nil
		}
		return csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	default:
		return csipb.VolumeCapability_AccessMode_UNKNOWN, accessModesError("unsupported AccessMode combination: %v", modes)
	}
}

// accessModesError formats an access-mode error that matches ErrAccessModes
// while keeping its message as it is.
func accessModesError(format string, args ...any) error {
	return modesError{fmt.Errorf(format, args...)}
}

type modesError struct{ error }

func (e modesError) Unwrap() error      { return e.error }
func (modesError) Is(target error) bool { return target == ErrAccessModes }

// Capability builds the CSI volume capability for a spec: block or mount
// (with fsType, falling back to defaultFSType, and the mount options), and
// the access mode from AccessMode.
func Capability(spec *corev1.PersistentVolumeSpec, defaultFSType string, singleNodeMultiWriter bool) (*csipb.VolumeCapability, error) {
	mode, err := AccessMode(spec.AccessModes, singleNodeMultiWriter)
	if err != nil {
		return nil, err
	}
	capability := &csipb.VolumeCapability{AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode}}
	if spec.VolumeMode != nil && *spec.VolumeMode == corev1.PersistentVolumeBlock {
		capability.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
		return capability, nil
	}
	fsType := defaultFSType
	if spec.CSI != nil && spec.CSI.FSType != "" {
		fsType = spec.CSI.FSType
	}
	capability.AccessType = &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{
		FsType:     fsType,
		MountFlags: slices.Clone(spec.MountOptions),
	}}
	return capability, nil
}
