package freshness

import (
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// gone is the recorded version of an object whose deletion the attacher
// wrote (see Gone): newer than any cached copy. It is not a well-formed
// resourceVersion, so no write can be mistaken for it.
const gone = "gone"

// Tracker records, per object, the resourceVersion of the attacher's last
// write. It is safe for concurrent use. Entries are dropped as soon as the
// cache has caught up, and by Forget once the object is deleted (the caller
// calls it when its cache sees the deletion), so its size is bounded by the
// writes in flight.
type Tracker struct {
	mu      sync.Mutex
	written map[types.UID]string // an orderable resourceVersion, or gone
}

// New returns an empty Tracker.
func New() *Tracker {
	return &Tracker{written: map[types.UID]string{}}
}

// Wrote records that uid was written and the API server answered with
// resourceVersion. A resourceVersion that is not orderable is ignored: the
// tracker then gives no protection for that object, which is safe.
func (t *Tracker) Wrote(uid types.UID, resourceVersion string) {
	if uid == "" || !orderable(resourceVersion) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.written[uid]; !ok || older(last, resourceVersion) {
		t.written[uid] = resourceVersion
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
	t.written[uid] = gone
}

// Stale tells whether a cached copy with cachedVersion is older than the
// last write recorded for uid. Once the cache has caught up the entry is
// forgotten. If cachedVersion is not orderable, the copy is treated as
// fresh.
func (t *Tracker) Stale(uid types.UID, cachedVersion string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	written, ok := t.written[uid]
	if !ok {
		return false
	}
	if !orderable(cachedVersion) || !older(cachedVersion, written) {
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

// orderable reports whether rv can be ordered: a positive decimal without
// leading zeros, the form in which Kubernetes makes resourceVersions
// comparable (k8s.io/apimachinery/pkg/util/resourceversion), and within 64
// bits. The bound keeps the range the tracker has always had; etcd
// revisions, which API servers hand out, are int64 and stay inside it.
func orderable(rv string) bool {
	if _, err := resourceversion.CompareResourceVersion(rv, rv); err != nil {
		return false
	}
	_, err := strconv.ParseUint(rv, 10, 64)
	return err == nil
}

// older reports whether version a is older than version b. Both are
// orderable or gone; nothing is newer than gone.
func older(a, b string) bool {
	switch {
	case a == gone:
		return false
	case b == gone:
		return true
	}
	cmp, err := resourceversion.CompareResourceVersion(a, b)
	return err == nil && cmp < 0
}
