package cache

import (
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
)

// newInformer builds the cache's informers. controller-runtime gives every
// informer the namespace index; for the cluster-scoped kinds the cache
// holds (VolumeAttachments, PersistentVolumes, CSINodes) it files every
// object under the one key "", a set as large as the kind. Nothing reads
// it (a list without a namespace reads the store, a field selector its
// own index), and building it was the largest single cost of storing the
// initial lists on a start: one map insert per object into a map that
// keeps growing and rehashing, before any worker starts. Namespaced kinds
// keep it.
func newInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	switch obj.(type) {
	case *storagev1.VolumeAttachment, *corev1.PersistentVolume, *storagev1.CSINode:
		indexers = maps.Clone(indexers)
		delete(indexers, toolscache.NamespaceIndex)
	}
	return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
}
