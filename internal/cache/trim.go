package cache

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Options are the Manager's cache options for an attacher of driver.
// The cache holds every PersistentVolume, VolumeAttachment and CSINode of
// the cluster, so each object is trimmed on arrival to what the reconcilers
// read: memory then follows the driver's own volumes, not the cluster's.
//
// What is kept:
//   - VolumeAttachments of the driver: everything but managedFields. Others:
//     the name, deletion state and the fields the indexes and filters read
//     (spec.attacher, spec.nodeName, spec.source.persistentVolumeName).
//   - PersistentVolumes of the driver: metadata needed for finalizer patches,
//     and the spec fields that make up the CSI request. In-tree volumes the
//     driver took over (CSI migration) also keep what translation reads
//     (labels, the annotations of volume.TranslationAnnotations, the
//     claim's namespace) and the migrated-to annotation, which release
//     reads. Others:
//     the name, deletion state, our finalizer, and the CSI driver name or
//     in-tree source, so that a VolumeAttachment naming such a PV gets a
//     clear error.
//   - CSINodes: the driver's own entry only.
//   - Secrets, when the Secret watch runs (WatchSecrets): metadata only,
//     trimmed by TrimSecret to name, namespace, UID and resourceVersion.
//
// The cluster-scoped kinds have no namespace index (see newInformer).
func Options(driver string, resync *time.Duration) crcache.Options {
	return crcache.Options{
		SyncPeriod:       resync,
		NewInformer:      newInformer,
		DefaultTransform: crcache.TransformStripManagedFields(),
		ByObject: map[client.Object]crcache.ByObject{
			&storagev1.VolumeAttachment{}: {Transform: TrimVolumeAttachment(driver)},
			&corev1.PersistentVolume{}:    {Transform: TrimPersistentVolume(driver)},
			&storagev1.CSINode{}:          {Transform: TrimCSINode(driver)},
			SecretMetadata():              {Transform: TrimSecret()},
		},
	}
}

// TrimVolumeAttachment returns the cache transform for VolumeAttachments.
func TrimVolumeAttachment(driver string) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		va, ok := obj.(*storagev1.VolumeAttachment)
		if !ok {
			return stripManagedFields(obj)
		}
		va.ManagedFields = nil
		if va.Spec.Attacher == driver {
			return va, nil
		}
		return &storagev1.VolumeAttachment{
			TypeMeta:   va.TypeMeta,
			ObjectMeta: trimmedMeta(va.ObjectMeta, ""),
			Spec: storagev1.VolumeAttachmentSpec{
				Attacher: va.Spec.Attacher,
				NodeName: va.Spec.NodeName,
				Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: va.Spec.Source.PersistentVolumeName},
			},
		}, nil
	}
}

// TrimPersistentVolume returns the cache transform for PersistentVolumes.
func TrimPersistentVolume(driver string) toolscache.TransformFunc {
	finalizer := volume.FinalizerName(driver)
	return func(obj any) (any, error) {
		pv, ok := obj.(*corev1.PersistentVolume)
		if !ok {
			return stripManagedFields(obj)
		}
		migrated := volume.MigratesTo(pv, driver)
		if !migrated && pv.Spec.CSI != nil && pv.Spec.CSI.Driver == driver {
			// The driver's own, the bulk of the cache: trimmed in place (the
			// informer hands the transform an object of its own), so a large
			// list does not allocate each PersistentVolume twice.
			pv.ManagedFields = nil
			pv.Labels = nil
			pv.Annotations = nil
			pv.Spec = corev1.PersistentVolumeSpec{
				AccessModes:            pv.Spec.AccessModes,
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: pv.Spec.CSI},
				MountOptions:           pv.Spec.MountOptions,
				VolumeMode:             pv.Spec.VolumeMode,
			}
			pv.Status = corev1.PersistentVolumeStatus{}
			return pv, nil
		}
		out := &corev1.PersistentVolume{TypeMeta: pv.TypeMeta}
		if migrated {
			// An in-tree volume this driver took over: translation reads
			// the zone labels, some plugins' annotations and the claim's
			// namespace as well as the source (volume.TranslationAnnotations
			// lists what and why), and the migrated-to annotation decides
			// whether our finalizer stays.
			out.ObjectMeta = pv.ObjectMeta
			out.ManagedFields = nil
			out.Annotations = keepAnnotations(pv.Annotations, migratedAnnotations)
			out.Spec = pv.Spec
			out.Spec.NodeAffinity = nil
			out.Spec.ClaimRef = nil
			if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace != "" {
				out.Spec.ClaimRef = &corev1.ObjectReference{Namespace: ref.Namespace}
			}
			return out, nil
		}
		// Not ours. What is left is enough for a clear error when one of
		// our VolumeAttachments names it: the CSI driver name, or the
		// in-tree source (a pointer to a few strings).
		out.ObjectMeta = trimmedMeta(pv.ObjectMeta, finalizer)
		if pv.Spec.CSI != nil {
			out.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: pv.Spec.CSI.Driver}
			return out, nil
		}
		out.Spec.PersistentVolumeSource = pv.Spec.PersistentVolumeSource
		return out, nil
	}
}

// TrimCSINode returns the cache transform for CSINodes.
func TrimCSINode(driver string) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		node, ok := obj.(*storagev1.CSINode)
		if !ok {
			return stripManagedFields(obj)
		}
		out := &storagev1.CSINode{TypeMeta: node.TypeMeta, ObjectMeta: trimmedMeta(node.ObjectMeta, "")}
		for _, d := range node.Spec.Drivers {
			if d.Name == driver {
				out.Spec.Drivers = []storagev1.CSINodeDriver{{Name: d.Name, NodeID: d.NodeID}}
			}
		}
		return out, nil
	}
}

// trimmedMeta keeps identity, version and deletion state, and finalizer when
// it is present.
func trimmedMeta(m metav1.ObjectMeta, finalizer string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	if finalizer != "" {
		for _, f := range m.Finalizers {
			if f == finalizer {
				// Keep the whole list: a patch built from it must match.
				out.Finalizers = m.Finalizers
				break
			}
		}
	}
	return out
}

// migratedAnnotations are the annotations kept on an in-tree
// PersistentVolume the driver took over.
var migratedAnnotations = append([]string{volume.MigratedToAnnotation}, volume.TranslationAnnotations...)

// keepAnnotations returns the annotations of in named by keys; nil when
// there are none.
func keepAnnotations(in map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := in[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}

func stripManagedFields(obj any) (any, error) {
	return crcache.TransformStripManagedFields()(obj)
}
