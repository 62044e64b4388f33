package metrics

import (
	"context"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// CacheStates is the StateCounter of the csi_attacher_volumeattachments
// gauges: it counts the VolumeAttachments of driver by State over the whole
// cache on every scrape. It only reads, so it skips the cache's deep copies.
func CacheStates(reader client.Reader, driver string) StateCounter {
	finalizer := volume.FinalizerName(driver)
	return func() (attached, attaching, detaching, failed int, err error) {
		list := &storagev1.VolumeAttachmentList{}
		if err := reader.List(context.Background(), list, client.UnsafeDisableDeepCopy); err != nil {
			return 0, 0, 0, 0, err
		}
		ours := list.Items[:0]
		for _, va := range list.Items {
			if va.Spec.Attacher == driver {
				ours = append(ours, va)
			}
		}
		attached, attaching, detaching, failed = Count(ours, finalizer)
		return attached, attaching, detaching, failed, nil
	}
}
