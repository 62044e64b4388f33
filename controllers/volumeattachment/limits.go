package volumeattachment

import (
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/go-logr/logr"

	"github.com/csi-attacher/csi-attacher/internal/csi"
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

// callLimiter bounds the CSI calls in flight across all nodes, and adapts
// the bound to the driver: when the driver answers ResourceExhausted for
// calls to more than one node (a cloud API throttling the account, not one
// node at its attach limit), the bound halves, once per round of calls that
// started before the decrease; every successful call raises it by one again,
// up to max. A call that finds the bound reached is retried shortly, like a
// busy node, without holding a worker.
type callLimiter struct {
	max int

	mu       sync.Mutex
	limit    int
	inflight int
	// round counts the decreases; a call remembers the round it started
	// in, so a burst of failures of calls that all started before one
	// decrease halves the bound once, not once per call.
	round int
	// exhausted are the nodes that answered ResourceExhausted in this
	// round.
	exhausted map[string]bool
	// onChange, if set, is told the new bound when it halves or is back
	// at max.
	onChange func(limit int, lowered bool)
}

// newCallLimiter returns a limiter of at most max calls in flight; max <= 0
// means no limit.
func newCallLimiter(max int, onChange func(limit int, lowered bool)) *callLimiter {
	return &callLimiter{max: max, limit: max, onChange: onChange}
}

// tryAcquire takes a slot without waiting and returns the round it was taken
// in, for release.
func (l *callLimiter) tryAcquire() (round int, ok bool) {
	if l == nil || l.max <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= l.limit {
		return 0, false
	}
	l.inflight++
	return l.round, true
}

// release returns the slot of a call to node that started in round and
// ended with err, and adapts the bound.
func (l *callLimiter) release(round int, node string, err error) {
	if l == nil || l.max <= 0 {
		return
	}
	l.mu.Lock()
	l.inflight--
	var changed, lowered bool
	switch code, _ := csi.Code(err); {
	case err == nil:
		if l.limit < l.max {
			l.limit++
			changed = l.limit == l.max
		}
	case code == codes.ResourceExhausted && round == l.round:
		if l.exhausted == nil {
			l.exhausted = map[string]bool{}
		}
		l.exhausted[node] = true
		if len(l.exhausted) > 1 {
			l.limit = max(l.limit/2, 1)
			l.round++
			l.exhausted = nil
			changed, lowered = true, true
		}
	}
	limit := l.limit
	l.mu.Unlock()
	if changed && l.onChange != nil {
		l.onChange(limit, lowered)
	}
}

// errDriverBusy means the bound of CSI calls in flight is reached (see
// callLimiter). Like errNodeBusy, it is no failure: the operation is
// retried shortly.
var errDriverBusy = errors.New("the limit of concurrent CSI calls is reached")

// acquireCall takes a slot for one CSI call to node, within
// --max-inflight-per-node and the adaptive bound of calls in flight. done
// gives the slots back with the call's result.
func (r *Reconciler) acquireCall(node string) (done func(error), err error) {
	if !r.nodes.tryAcquire(node) {
		return nil, errNodeBusy
	}
	round, ok := r.calls.tryAcquire()
	if !ok {
		r.nodes.release(node)
		return nil, errDriverBusy
	}
	return func(err error) {
		r.calls.release(round, node, err)
		r.nodes.release(node)
	}, nil
}

// throttled logs the changes of the adaptive bound of CSI calls in flight
// and exports them in csi_attacher_max_inflight, which starts at the
// configured bound.
func (r *Reconciler) throttled(logger logr.Logger) func(limit int, lowered bool) {
	logger = logger.WithName("csi-calls")
	r.Metrics.SetMaxInflight(r.MaxInflight)
	return func(limit int, lowered bool) {
		r.Metrics.SetMaxInflight(limit)
		if lowered {
			logger.Info("The CSI driver answers ResourceExhausted on several nodes: fewer calls at once", "maxInflight", limit)
			return
		}
		logger.Info("The CSI driver takes calls again: back to the full number of calls at once", "maxInflight", limit)
	}
}
