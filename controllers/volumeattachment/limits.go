package volumeattachment

import (
	"context"
	"errors"
	"sync"

	"github.com/go-logr/logr"
	storagev1 "k8s.io/api/storage/v1"
)

// errNodeBusy means the per-node limit of concurrent CSI calls is reached.
// It is no failure of the attachment, and nothing is written: the
// attachment is queued again with its own backoff, and at once when one of
// the node's calls ends (nodeLimiter).
var errNodeBusy = errors.New("the node's limit of concurrent CSI calls is reached")

// nodeLimiter bounds concurrent CSI calls per node, for backends that
// serialise attachments per VM. A zero limit means no limit.
//
// A call that finds its node's slots taken does not wait: a worker never
// blocks on one busy node while others have work. The attachment is
// remembered instead, and queued again (wake) as soon as one of the node's
// calls ends, oldest first; its backoff stays in place as a safety net.
type nodeLimiter struct {
	limit int
	// wake queues a refused attachment again. Optional.
	wake func(waiter)

	mu      sync.Mutex
	used    map[string]int
	waiting map[string]*waitList
}

// waiter is an attachment refused for its node, and the lane it waits in.
type waiter struct {
	name   string
	detach bool
}

// waitList holds a node's waiters in arrival order. An entry whose waiter
// got a slot meanwhile is dropped from set only, and skipped when reached.
type waitList struct {
	order []waiter
	set   map[waiter]bool
}

// tryAcquire takes a slot for node without waiting; when there is none, w is
// remembered for a wake.
func (l *nodeLimiter) tryAcquire(node string, w waiter) bool {
	if l == nil || l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used == nil {
		l.used = map[string]int{}
		l.waiting = map[string]*waitList{}
	}
	wl := l.waiting[node]
	if l.used[node] >= l.limit {
		if wl == nil {
			wl = &waitList{set: map[waiter]bool{}}
			l.waiting[node] = wl
		}
		if !wl.set[w] {
			wl.set[w] = true
			wl.order = append(wl.order, w)
		}
		return false
	}
	l.used[node]++
	if wl != nil {
		delete(wl.set, w)
	}
	return true
}

// release returns a slot taken by tryAcquire, and wakes as many waiters of
// the node as it has free slots.
func (l *nodeLimiter) release(node string) {
	if l == nil || l.limit <= 0 {
		return
	}
	l.mu.Lock()
	if l.used[node] <= 1 {
		delete(l.used, node)
	} else {
		l.used[node]--
	}
	var woken []waiter
	if wl := l.waiting[node]; wl != nil {
		for free := l.limit - l.used[node]; free > 0 && len(wl.order) > 0; {
			w := wl.order[0]
			wl.order = wl.order[1:]
			if wl.set[w] {
				delete(wl.set, w)
				woken = append(woken, w)
				free--
			}
		}
		if len(wl.set) == 0 {
			delete(l.waiting, node)
		}
	}
	l.mu.Unlock()
	if l.wake != nil {
		for _, w := range woken {
			l.wake(w)
		}
	}
}

// len is the number of nodes with a slot taken or an attachment waiting.
func (l *nodeLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.used)
	for node := range l.waiting {
		if l.used[node] == 0 {
			n++
		}
	}
	return n
}

// callSlot is the right to make one CSI call for one node, within
// --max-inflight-per-node and the adaptive bound of calls in flight.
type callSlot struct {
	r        *Reconciler
	node     string
	ticket   callTicket
	returned bool
}

// acquireCall takes the slot for one CSI call about va. It comes before any
// other work of the operation (the source, the Secret GET, the request):
// an operation that cannot call now does nothing else either. A busy node
// refuses at once (errNodeBusy); the bound of calls in flight is waited for
// (callLimiter), until SIGTERM (errShuttingDown).
func (r *Reconciler) acquireCall(ctx context.Context, va *storagev1.VolumeAttachment, detach bool) (*callSlot, error) {
	if err := callAllowed(ctx); err != nil {
		return nil, err
	}
	node := va.Spec.NodeName
	if !r.nodes.tryAcquire(node, waiter{name: va.Name, detach: detach}) {
		return nil, errNodeBusy
	}
	firstTry := va.Status.AttachError == nil
	if detach {
		firstTry = va.Status.DetachError == nil
	}
	ticket, ok := r.calls.acquire(stopChannel(ctx), node, firstTry)
	if !ok {
		r.nodes.release(node)
		return nil, errShuttingDown
	}
	return &callSlot{r: r, node: node, ticket: ticket}, nil
}

// called gives the slot back with the result of the call made with it.
func (s *callSlot) called(err error) {
	if s.returned {
		return
	}
	s.returned = true
	s.r.calls.release(s.ticket, err)
	s.r.nodes.release(s.node)
}

// release gives back a slot no call was made with (the operation failed
// before it); after called it does nothing, so it can be deferred.
func (s *callSlot) release() {
	if s.returned {
		return
	}
	s.returned = true
	s.r.calls.releaseUnused(s.ticket)
	s.r.nodes.release(s.node)
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
