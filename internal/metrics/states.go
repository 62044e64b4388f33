package metrics

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// StateCounter counts the driver's VolumeAttachments by state. It is called
// on every scrape, so it must be cheap (read an informer cache, not the API
// server) and safe for concurrent use. When it returns an error the state
// gauges are left out of that scrape rather than reporting wrong numbers.
type StateCounter func() (attached, attaching, detaching, failed int, err error)

// Snapshot is what the scrape-time gauges of VolumeAttachments export: the
// counts by State and the age of the oldest pending attach and detach.
type Snapshot struct {
	Attached, Attaching, Detaching, Failed int
	// OldestAttach is the age of the oldest VolumeAttachment that is not
	// being deleted and not attached (StateAttaching or StateFailed), since
	// its creation; 0 when there is none.
	OldestAttach time.Duration
	// OldestDetach is the age of the oldest VolumeAttachment being deleted
	// whose detach is not done (StateDetaching or StateFailed), since its
	// deletion timestamp; 0 when there is none.
	OldestDetach time.Duration
}

// SnapshotSource computes a Snapshot of the driver's VolumeAttachments. Like
// a StateCounter it is called on every scrape, must be cheap and safe for
// concurrent use, and an error leaves the gauges out of that scrape.
type SnapshotSource func() (Snapshot, error)

// SetStateSource sets the function the csi_attacher_volumeattachments gauges
// are computed from on every scrape. A StateCounter only counts, so
// csi_attacher_oldest_pending_seconds is not exported; SetSnapshotSource
// gives both. With a nil f (the default) the gauges are not exported.
func (m *Metrics) SetStateSource(f StateCounter) {
	if m == nil {
		return
	}
	if f == nil {
		m.states.source.Store(nil)
		return
	}
	m.states.source.Store(&stateSource{snapshot: func() (Snapshot, error) {
		var s Snapshot
		var err error
		s.Attached, s.Attaching, s.Detaching, s.Failed, err = f()
		return s, err
	}})
}

// SetSnapshotSource sets the function the csi_attacher_volumeattachments
// and csi_attacher_oldest_pending_seconds gauges are computed from on every
// scrape, one pass over the VolumeAttachments for both. With a nil f (the
// default) the gauges are not exported.
func (m *Metrics) SetSnapshotSource(f SnapshotSource) {
	if m == nil {
		return
	}
	if f == nil {
		m.states.source.Store(nil)
		return
	}
	m.states.source.Store(&stateSource{snapshot: f, ages: true})
}

// stateSource is what SetStateSource and SetSnapshotSource store: ages
// tells whether the snapshot's ages are real (a StateCounter has none).
type stateSource struct {
	snapshot SnapshotSource
	ages     bool
}

// stateCollector exports the state gauges, and the pending ages when its
// source has them, from one call of its source at scrape time.
type stateCollector struct {
	desc        *prometheus.Desc
	pendingDesc *prometheus.Desc
	source      atomic.Pointer[stateSource]
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.pendingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	s, err := src.snapshot()
	if err != nil {
		return
	}
	for _, st := range []struct {
		state string
		n     int
	}{
		{StateAttached, s.Attached},
		{StateAttaching, s.Attaching},
		{StateDetaching, s.Detaching},
		{StateFailed, s.Failed},
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(st.n), st.state)
	}
	if !src.ages {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, seconds(s.OldestAttach), OperationAttach)
	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, seconds(s.OldestDetach), OperationDetach)
}

// State classifies a VolumeAttachment of the driver for the state gauges.
// finalizer is the attacher's finalizer on VolumeAttachments
// (volume.FinalizerName of the driver). In order:
//
//   - being deleted and our finalizer already gone (finalizer non-empty):
//     "", the detach is done and the object only waits for other
//     finalizers; it is not counted;
//   - being deleted with status.detachError set: StateFailed;
//   - being deleted: StateDetaching;
//   - status.attached: StateAttached;
//   - status.attachError set: StateFailed;
//   - otherwise: StateAttaching.
//
// An empty finalizer skips the finalizer check, so every VolumeAttachment
// being deleted counts as detaching or failed.
func State(va *storagev1.VolumeAttachment, finalizer string) string {
	if va.DeletionTimestamp != nil {
		if finalizer != "" && !slices.Contains(va.Finalizers, finalizer) {
			return ""
		}
		if va.Status.DetachError != nil {
			return StateFailed
		}
		return StateDetaching
	}
	if va.Status.Attached {
		return StateAttached
	}
	if va.Status.AttachError != nil {
		return StateFailed
	}
	return StateAttaching
}

// Count tallies vas by State, for use in a StateCounter. Objects for which
// State returns "" are not counted. The caller passes only the driver's
// VolumeAttachments.
func Count(vas []storagev1.VolumeAttachment, finalizer string) (attached, attaching, detaching, failed int) {
	s := Tally(vas, finalizer, time.Time{})
	return s.Attached, s.Attaching, s.Detaching, s.Failed
}
