package volume

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// Errors of PVNameOf, InlineSource, PVSource, AccessMode and Capability.
// Invalid matches every one of them (errors.Is), so that callers can tell a
// VolumeAttachment that can never work from one that waits for an object;
// tests match the single ones.
var (
	ErrBothSources    = errors.New("both InlineCSIVolumeSource and PersistentVolumeName specified in VA source")
	ErrNeitherSource  = errors.New("neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source")
	ErrNotCSI         = errors.New("spec contains a non-CSI volume source that CSI migration does not cover")
	ErrEmptyHandle    = errors.New("CSI volume source has an empty volumeHandle")
	ErrInlineNilCSI   = errors.New("inline volume spec contains nil CSI source")
	ErrNoAccessModes  = errors.New("unsupported AccessMode combination: no access modes")
	ErrWrongCSIDriver = errors.New("CSI volume source names another driver")
	// ErrAccessModes is matched (errors.Is) by every access-mode combination
	// CSI cannot express; the messages name the combination.
	ErrAccessModes = errors.New("access modes CSI cannot express")
	// ErrUntranslatable is matched by an in-tree source csi-translation-lib
	// refuses.
	ErrUntranslatable = errors.New("cannot translate the in-tree source to CSI")
)

// invalid lists the errors above that come from the objects themselves.
var invalid = []error{ErrBothSources, ErrNeitherSource, ErrNotCSI, ErrEmptyHandle, ErrInlineNilCSI,
	ErrNoAccessModes, ErrWrongCSIDriver, ErrAccessModes, ErrUntranslatable}

// Invalid tells whether err says that a VolumeAttachment cannot be attached
// as its objects are now: both or neither source, a PersistentVolume or
// inline spec without a usable CSI source for this driver, an in-tree
// source that cannot be translated, or access modes CSI cannot express.
// Retrying cannot help; only a change to the VolumeAttachment or its
// PersistentVolume can. A missing object is not invalid: it may appear.
func Invalid(err error) bool {
	for _, target := range invalid {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Source is what a VolumeAttachment's source resolves to: the spec that
// carries the CSI source, capabilities and mount options, and the name of
// the PersistentVolume when there is one (empty for inline volumes).
type Source struct {
	// PVName is the PersistentVolume's name; empty for an inline spec.
	PVName string
	// Spec is the PersistentVolume's spec or the inline spec. It is never nil
	// and its CSI field is never nil. For a migrated in-tree volume it is the
	// translated spec.
	Spec *corev1.PersistentVolumeSpec
	// Migrated tells that Spec was translated from an in-tree source.
	Migrated bool
}

// CSI is the CSI part of the source.
func (s Source) CSI() *corev1.CSIPersistentVolumeSource { return s.Spec.CSI }

// Inline tells whether the source is an inline volume spec.
func (s Source) Inline() bool { return s.PVName == "" }

// PVNameOf returns the PersistentVolume a VolumeAttachment refers to, and
// whether it has both or neither source.
func PVNameOf(va *storagev1.VolumeAttachment) (string, error) {
	src := va.Spec.Source
	switch {
	case src.PersistentVolumeName != nil && src.InlineVolumeSpec != nil:
		return "", ErrBothSources
	case src.PersistentVolumeName == nil && src.InlineVolumeSpec == nil:
		return "", ErrNeitherSource
	case src.PersistentVolumeName != nil:
		if *src.PersistentVolumeName == "" {
			return "", ErrNeitherSource
		}
		return *src.PersistentVolumeName, nil
	default:
		return "", nil
	}
}

// InlineSource validates a VolumeAttachment's inline volume spec.
func InlineSource(va *storagev1.VolumeAttachment, driver string) (Source, error) {
	spec := va.Spec.Source.InlineVolumeSpec
	if spec == nil || spec.CSI == nil {
		return Source{}, ErrInlineNilCSI
	}
	if err := checkCSI(spec.CSI, driver); err != nil {
		return Source{}, fmt.Errorf("inline volume spec: %w", err)
	}
	return Source{Spec: spec}, nil
}

// PVSource validates a PersistentVolume as the source of an attachment of
// driver. An in-tree source that CSI migration covers is translated first,
// on every call, so the request always follows the PV as it is now. The
// error names the PersistentVolume.
func PVSource(pv *corev1.PersistentVolume, driver string) (Source, error) {
	migrated := false
	if pv.Spec.CSI == nil && translator.IsPVMigratable(pv) {
		translated, err := translate(pv)
		if err != nil {
			return Source{}, err
		}
		pv, migrated = translated, true
	}
	if pv.Spec.CSI == nil {
		return Source{}, fmt.Errorf("PersistentVolume %q: %w", pv.Name, ErrNotCSI)
	}
	if err := checkCSI(pv.Spec.CSI, driver); err != nil {
		return Source{}, fmt.Errorf("PersistentVolume %q: %w", pv.Name, err)
	}
	return Source{PVName: pv.Name, Spec: &pv.Spec, Migrated: migrated}, nil
}

func checkCSI(src *corev1.CSIPersistentVolumeSource, driver string) error {
	if src.Driver != driver {
		return fmt.Errorf("%w: %q, not %q", ErrWrongCSIDriver, src.Driver, driver)
	}
	if src.VolumeHandle == "" {
		return ErrEmptyHandle
	}
	return nil
}

// NodeID finds the driver's node ID in a CSINode.
func NodeID(node *storagev1.CSINode, driver string) (string, error) {
	for _, d := range node.Spec.Drivers {
		if d.Name == driver {
			if d.NodeID == "" {
				return "", fmt.Errorf("CSINode %s has an empty node ID for driver %s", node.Name, driver)
			}
			return d.NodeID, nil
		}
	}
	return "", fmt.Errorf("CSINode %s does not contain driver %s", node.Name, driver)
}
