package main

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// scaleState is the run's objects and what was seen of them.
type scaleState struct {
	cfg       config
	finalizer string

	newCreated []time.Time // written once each, before the create
	mu         sync.Mutex
	attachedAt map[string]time.Time // VA name -> first seen attached
	attached   atomic.Int64         // new and pending ones attached
	gone       atomic.Int64
	lastGone   atomic.Int64

	existingModified, foreignModified atomic.Int64

	csiMu    sync.Mutex
	csi      map[string]map[string]int
	csiOther map[string]int
	pub      map[[2]string]bool
	dups     int
}

func newScaleState(cfg config) *scaleState {
	return &scaleState{
		cfg:        cfg,
		finalizer:  volume.FinalizerName(driverName),
		newCreated: make([]time.Time, cfg.scaleNew),
		attachedAt: map[string]time.Time{},
		csi:        map[string]map[string]int{},
		csiOther:   map[string]int{},
		pub:        map[[2]string]bool{},
	}
}

// node is the node of the i-th object of a class: spread round robin.
func (s *scaleState) node(i int) string { return scaleNodeName(i % s.cfg.scaleNodes) }

// va returns the i-th VolumeAttachment of a class, as
// kube-controller-manager creates it; watched ones carry watchLabel.
func (s *scaleState) va(class string, i int, watched bool) *storagev1.VolumeAttachment {
	drv := driverName
	if class == classForeign {
		drv = otherDriverName
	}
	va := testbed.VA(scaleName(scaleVAPrefix, class, i), drv, s.node(i), scaleName(scalePVPrefix, class, i))
	if watched {
		va.Labels = map[string]string{watchLabel: "true"}
	}
	return va
}

// attachedVA is an existing (or foreign) VolumeAttachment as an attacher
// leaves it: its finalizer and node-ID annotation set; the status is set
// apart (a create drops it).
func (s *scaleState) attachedVA(class string, i int) *storagev1.VolumeAttachment {
	va := s.va(class, i, class == classExisting && i < s.cfg.scaleDetach)
	fin := s.finalizer
	if class == classForeign {
		fin = volume.FinalizerName(otherDriverName)
	}
	va.Finalizers = []string{fin}
	va.Annotations = map[string]string{volume.NodeIDAnnotation: scaleNodeID(s.node(i))}
	return va
}

func (s *scaleState) pv(class string, i int) *corev1.PersistentVolume {
	drv := driverName
	if class == classForeign {
		drv = otherDriverName
	}
	pv := testbed.PV(scaleName(scalePVPrefix, class, i), drv, scaleName(scaleVolPrefix, class, i))
	switch class {
	case classExisting:
		pv.Finalizers = []string{s.finalizer}
	case classForeign:
		pv.Finalizers = []string{volume.FinalizerName(otherDriverName)}
	}
	return pv
}

// published is the driver's state before the start: every existing volume
// on its node.
func (s *scaleState) published() map[string][]string {
	out := make(map[string][]string, s.cfg.scale)
	for i := range s.cfg.scale {
		out[scaleName(scaleVolPrefix, classExisting, i)] = []string{scaleNodeID(s.node(i))}
	}
	return out
}

func (s *scaleState) onCall(c fake.Call) {
	s.csiMu.Lock()
	defer s.csiMu.Unlock()
	class := classOf(c.VolumeID)
	if class == "" {
		s.csiOther[c.Method]++
	} else {
		if s.csi[class] == nil {
			s.csi[class] = map[string]int{}
		}
		s.csi[class][c.Method]++
	}
	if c.Code != codes.OK {
		return
	}
	if dupPublish, dupUnpublish := recordPublication(s.pub, c); dupPublish || dupUnpublish {
		s.dups++
	}
}

func (s *scaleState) csiCounts() (map[string]map[string]int, map[string]int, int) {
	s.csiMu.Lock()
	defer s.csiMu.Unlock()
	byClass := map[string]map[string]int{}
	for k, v := range s.csi {
		byClass[k] = maps.Clone(v)
	}
	return byClass, maps.Clone(s.csiOther), s.dups
}

func (s *scaleState) onVA(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	va, ok := obj.(*storagev1.VolumeAttachment)
	if !ok {
		return
	}
	now := time.Now()
	class := classOf(va.Name)
	if deleted {
		if class == classExisting {
			s.gone.Add(1)
			storeMax(&s.lastGone, now.UnixNano())
		}
		return
	}
	if !va.Status.Attached || (class != classNew && class != classPending) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.attachedAt[va.Name]; !seen {
		s.attachedAt[va.Name] = now
		s.attached.Add(1)
	}
}

// spanFrom returns the first and the last attach of a class, in seconds
// from t0.
func (s *scaleState) spanFrom(t0 time.Time, class string) (first, last float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lo, hi time.Time
	for name, at := range s.attachedAt {
		if classOf(name) != class {
			continue
		}
		if lo.IsZero() || at.Before(lo) {
			lo = at
		}
		if at.After(hi) {
			hi = at
		}
	}
	if lo.IsZero() {
		return 0, 0
	}
	return seconds(lo.Sub(t0)), seconds(hi.Sub(t0))
}

// oldestPending is when the first pending VolumeAttachment created was
// attached, in seconds from t0.
func (s *scaleState) oldestPending(t0 time.Time) float64 {
	if s.cfg.scalePending == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return seconds(s.attachedAt[scaleName(scaleVAPrefix, classPending, 0)].Sub(t0))
}
