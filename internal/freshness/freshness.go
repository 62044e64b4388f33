package freshness

import (
	"math"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Tracker records, per object, the resourceVersion of the attacher's last
// write. It is safe for concurrent use. Entries are dropped as soon as the
// cache has caught up, and by Forget once the object is deleted (the caller
// calls it when its cache sees the deletion), so its size is bounded by the
// writes in flight.
type Tracker struct {
	mu      sync.Mutex
	written map[types.UID]uint64
}

// New returns an empty Tracker.
func New() *Tracker {
	return &Tracker{written: map[types.UID]uint64{}}
}

// Wrote records that uid was written and the API server answered with
// resourceVersion. A resourceVersion that is not a number is ignored: the
// tracker then gives no protection for that object, which is safe.
func (t *Tracker) Wrote(uid types.UID, resourceVersion string) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil || uid == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rv > t.written[uid] {
		t.written[uid] = rv
	}
}

// Gone records that the attacher's write deleted uid (it removed the last
// finalizer of an object being deleted). The API server answers such a
// write with the object's previous resourceVersion, so Wrote could not tell
// the cached copy from the deleted object: after Gone every cached copy of
// uid is stale, until Forget, which the caller arranges for when the cache
// sees the deletion.
func (t *Tracker) Gone(uid types.UID) {
	if uid == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.written[uid] = math.MaxUint64
}

// Stale tells whether a cached copy with cachedVersion is older than the
// last write recorded for uid. Once the cache has caught up the entry is
// forgotten.
//
// resourceVersions are documented as opaque, but every API server backed by
// etcd hands out the etcd revision, a number that grows with each write. If
// either value is not a number, the copy is treated as fresh.
func (t *Tracker) Stale(uid types.UID, cachedVersion string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	written, ok := t.written[uid]
	if !ok {
		return false
	}
	cached, err := strconv.ParseUint(cachedVersion, 10, 64)
	if err != nil || cached >= written {
		delete(t.written, uid)
		return false
	}
	return true
}

// Forget drops what is known about uid, e.g. once the object is gone.
func (t *Tracker) Forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, uid)
}

// Len is the number of objects whose newer copy is still awaited.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.written)
}
