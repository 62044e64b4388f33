package volume

import (
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	csitrans "k8s.io/csi-translation-lib"
	"k8s.io/csi-translation-lib/plugins"
)

// AzureFileResourceGroupAnnotation holds, on an in-tree Azure File
// PersistentVolume, the resource group csi-translation-lib puts in the
// volume handle (the library does not export its name).
const AzureFileResourceGroupAnnotation = "kubernetes.io/azure-file-resource-group"

// TranslationAnnotations are the annotations csi-translation-lib reads when
// it translates an in-tree PersistentVolume: Portworx's auth Secret, which
// becomes the ControllerPublish secret reference, and Azure File's
// resource group, part of the volume handle. Besides these it reads the
// PV's name, its zone and region labels, its node affinity (only to write
// the translated node affinity, which the attacher does not use) and, for
// Azure File, spec.claimRef.namespace.
var TranslationAnnotations = []string{
	plugins.OpenStorageAuthSecretNameKey,
	plugins.OpenStorageAuthSecretNamespaceKey,
	AzureFileResourceGroupAnnotation,
}

// TranslationLabels are the PersistentVolume labels csi-translation-lib
// reads: the zone labels, which make GCE PD's volume handle (a zone list
// that spans regions cannot be translated at all) and every plugin's
// topology, and the region labels, read for the topology. Both in their GA
// and beta forms.
var TranslationLabels = []string{
	corev1.LabelTopologyZone,
	corev1.LabelFailureDomainBetaZone,
	corev1.LabelTopologyRegion,
	corev1.LabelFailureDomainBetaRegion,
}

// translator is csi-translation-lib's translator. It holds no state, so one
// value serves every goroutine.
var translator = csitrans.New()

// IsMigrationDriver tells whether driver has taken over an in-tree plugin
// (GCE PD, AWS EBS, Azure Disk and File, Cinder, vSphere, Portworx). Only
// such drivers get the "migrated" label on the CSI call metric, and only
// their volume handles are repaired with the node ID.
func IsMigrationDriver(driver string) bool {
	return translator.IsMigratedCSIDriverByName(driver)
}

// MigratesTo tells whether pv is an in-tree PersistentVolume whose plugin
// driver has taken over. It does not look at the migrated-to annotation:
// the plugin decides which driver translates the volume, the annotation only
// whether kube-controller-manager currently routes it to that driver.
func MigratesTo(pv *corev1.PersistentVolume, driver string) bool {
	if pv.Spec.CSI != nil || !translator.IsPVMigratable(pv) {
		return false
	}
	plugin, err := translator.GetInTreePluginNameFromSpec(pv, nil)
	if err != nil {
		return false
	}
	name, err := translator.GetCSINameFromInTreeName(plugin)
	return err == nil && name == driver
}

// MigrationRolledBack tells whether pv is an in-tree volume of driver's
// plugin that kube-controller-manager no longer routes to driver: its
// migrated-to annotation names another driver or is gone. Our finalizer on
// such a PV is released once no VolumeAttachment uses it, even though the
// PV is not being deleted.
func MigrationRolledBack(pv *corev1.PersistentVolume, driver string) bool {
	return MigratesTo(pv, driver) && pv.Annotations[MigratedToAnnotation] != driver
}

// translate returns the CSI form of an in-tree PersistentVolume, without
// modifying pv.
func translate(pv *corev1.PersistentVolume) (*corev1.PersistentVolume, error) {
	// The translations only log on inline volumes, which never come here.
	out, err := translator.TranslateInTreePVToCSI(logr.Discard(), pv)
	if err != nil {
		return nil, fmt.Errorf("PersistentVolume %q: %w: %w", pv.Name, ErrUntranslatable, err)
	}
	return out, nil
}

// RepairHandle completes a volume handle produced by translation with what
// only the node ID knows (GCE PD's project and zone), so it can be compared
// with the handles the driver lists. Drivers that never took over an
// in-tree plugin get the handle back unchanged: their handles are theirs.
func RepairHandle(driver, handle, nodeID string) (string, error) {
	if !IsMigrationDriver(driver) {
		return handle, nil
	}
	repaired, err := translator.RepairVolumeHandle(driver, handle, nodeID)
	if err != nil {
		return handle, fmt.Errorf("cannot repair volume handle %q with node ID %q: %w", handle, nodeID, err)
	}
	return repaired, nil
}
