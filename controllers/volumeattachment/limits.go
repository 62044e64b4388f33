package volumeattachment

import (
	"errors"
	"sync"
	"time"
)

// nodeBusyRetry is how soon an operation that found its node's slots full
// looks again. It is short: slots free up as soon as a CSI call returns.
const nodeBusyRetry = 200 * time.Millisecond

// errNodeBusy means the per-node limit of concurrent CSI calls is reached.
// The reconcile is requeued shortly, without counting as a failure.
var errNodeBusy = errors.New("the node's limit of concurrent CSI calls is reached")

// keyedMutex serialises work per key (a VolumeAttachment name) across the
// attach and detach controllers: an attach still in flight when the object
// is deleted finishes before the detach starts, so a late
// ControllerPublishVolume can never follow the ControllerUnpublishVolume.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

// lock blocks until key is free and returns its unlock function.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*refMutex{}
	}
	m, ok := k.locks[key]
	if !ok {
		m = &refMutex{}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()

	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// nodeLimiter bounds concurrent CSI calls per node, for backends that
// serialise attachments per VM. A zero limit means no limit.
type nodeLimiter struct {
	limit int
	mu    sync.Mutex
	used  map[string]int
}

// tryAcquire takes a slot for node without waiting: a worker never blocks on
// one busy node while others have work.
func (l *nodeLimiter) tryAcquire(node string) bool {
	if l == nil || l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used == nil {
		l.used = map[string]int{}
	}
	if l.used[node] >= l.limit {
		return false
	}
	l.used[node]++
	return true
}

// release returns a slot taken by tryAcquire.
func (l *nodeLimiter) release(node string) {
	if l == nil || l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used[node] <= 1 {
		delete(l.used, node)
		return
	}
	l.used[node]--
}

// len is the number of keys locked or waited for.
func (k *keyedMutex) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}

// len is the number of nodes with a slot taken.
func (l *nodeLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.used)
}
