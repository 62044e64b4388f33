package volumeattachment

import (
	"sync"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/csi-attacher/csi-attacher/internal/cache"
)

// startTimes remembers when this process first saw an operation start, so
// the end-to-end latency metrics are exact: creation and deletion timestamps
// have one-second resolution, too coarse for operations that take
// milliseconds. After a restart the object's own timestamp is used.
type startTimes struct {
	mu   sync.Mutex
	seen map[string]seenAt
}

type seenAt struct {
	uid types.UID
	at  time.Time
}

// since returns how long ago the operation op on the object started: the
// moment we first saw it, when that falls within two seconds of the object's
// timestamp (so it is the same event), else the timestamp itself.
func (s *startTimes) since(op, name string, uid types.UID, stamp metav1.Time, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := stamp.Time
	if e, ok := s.seen[op+"/"+name]; ok && e.uid == uid && !e.at.Before(stamp.Time) && e.at.Sub(stamp.Time) < 2*time.Second {
		start = e.at
	}
	delete(s.seen, op+"/"+name)
	return now.Sub(start)
}

// seenAt returns when this process first saw op start on the object, if
// it remembers.
func (s *startTimes) seenAt(op, name string, uid types.UID) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.seen[op+"/"+name]
	if !ok || e.uid != uid {
		return time.Time{}, false
	}
	return e.at, true
}

// observe records the first sighting of op on the object.
func (s *startTimes) observe(op, name string, uid types.UID, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]seenAt{}
	}
	key := op + "/" + name
	if e, ok := s.seen[key]; ok && e.uid == uid {
		return
	}
	s.seen[key] = seenAt{uid: uid, at: now}
}

// forget drops what is known about an object that is gone.
func (s *startTimes) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, "attach/"+name)
	delete(s.seen, "detach/"+name)
}

// forgetObject drops what is known about a deleted object, leaving alone
// the entries of a newer object of the same name.
func (s *startTimes) forgetObject(name string, uid types.UID) {
	s.forgetOp("attach", name, uid)
	s.forgetOp("detach", name, uid)
}

// forgetOp drops the start of op on the object, if it is the one recorded.
func (s *startTimes) forgetOp(op, name string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.seen[op+"/"+name]; ok && e.uid == uid {
		delete(s.seen, op+"/"+name)
	}
}

// len is the number of operations whose start is remembered.
func (s *startTimes) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// handler follows the VolumeAttachments of driver as the informer sees
// them, in order: it notes when an attach or a detach first shows up, so the
// latency metrics include the time spent queued, and on deletion forgets
// the object here and, through forget, in the other per-object maps.
//
// One handler on the informer sees every event of an object in order, so an
// entry can never come back after the deletion that forgot it.
func (s *startTimes) handler(driver, finalizer string, forget func(client.Object)) toolscache.ResourceEventHandlerFuncs {
	note := func(o any) {
		va, ok := o.(*storagev1.VolumeAttachment)
		if !ok || va.Spec.Attacher != driver {
			return
		}
		switch {
		case va.DeletionTimestamp.IsZero():
			if !va.Status.Attached {
				s.observe("attach", va.Name, va.UID, time.Now())
			}
		default:
			s.forgetOp("attach", va.Name, va.UID)
			if controllerutil.ContainsFinalizer(va, finalizer) {
				s.observe("detach", va.Name, va.UID, time.Now())
			}
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, o any) { note(o) },
		DeleteFunc: func(o any) {
			if va := cache.Deleted(o); va != nil {
				s.forgetObject(va.GetName(), va.GetUID())
				forget(va)
			}
		},
	}
}
