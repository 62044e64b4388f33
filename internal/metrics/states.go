package metrics

import (
	"context"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// CacheSnapshot is the SnapshotSource of the csi_attacher_volumeattachments
// and csi_attacher_oldest_pending_seconds gauges: one pass over the driver's
// VolumeAttachments in the cache on every scrape, ages taken against the
// local clock. It only reads, so it skips the cache's deep copies.
func CacheSnapshot(reader client.Reader, driver string) SnapshotSource {
	finalizer := volume.FinalizerName(driver)
	return func() (Snapshot, error) {
		list := &storagev1.VolumeAttachmentList{}
		if err := reader.List(context.Background(), list, client.UnsafeDisableDeepCopy); err != nil {
			return Snapshot{}, err
		}
		ours := list.Items[:0]
		for _, va := range list.Items {
			if va.Spec.Attacher == driver {
				ours = append(ours, va)
			}
		}
		return Tally(ours, finalizer, time.Now()), nil
	}
}

// Tally counts vas by State, as Count does, and finds the ages at now of
// the oldest pending attach and detach (see Snapshot). Objects for which
// State returns "" are neither counted nor pending. A timestamp after now
// (clock skew with the API server) counts as an age of 0. The caller passes
// only the driver's VolumeAttachments.
func Tally(vas []storagev1.VolumeAttachment, finalizer string, now time.Time) Snapshot {
	var s Snapshot
	for i := range vas {
		va := &vas[i]
		state := State(va, finalizer)
		switch state {
		case "":
			continue
		case StateAttached:
			s.Attached++
		case StateAttaching:
			s.Attaching++
		case StateDetaching:
			s.Detaching++
		case StateFailed:
			s.Failed++
		}
		switch {
		case va.DeletionTimestamp != nil:
			s.OldestDetach = max(s.OldestDetach, now.Sub(va.DeletionTimestamp.Time))
		case state != StateAttached:
			s.OldestAttach = max(s.OldestAttach, now.Sub(va.CreationTimestamp.Time))
		}
	}
	return s
}
