package volumeattachment

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	storagev1 "k8s.io/api/storage/v1"
)

// errNodeBusy means the per-node limit of concurrent CSI calls is reached,
// or the node's order puts the call behind others (its detaches before its
// attaches). It is no failure of the attachment, and nothing is written:
// the attachment is queued again with its own backoff, and at once when the
// node's order gives it a slot (nodeLimiter).
var errNodeBusy = errors.New("the node's limit of concurrent CSI calls is reached")

// nodeLimiter bounds concurrent CSI calls per node, for backends that
// serialise attachments per VM. A zero limit means no limit, and no order
// either: every call goes at once, and a driver that batches per node sees
// them together.
//
// A call that finds its node's slots taken does not wait: a worker never
// blocks on one busy node while others have work. The attachment is
// remembered instead, and queued again (wake) when a slot frees; its
// backoff stays in place as a safety net. Which waiter a free slot goes to
// is the node's order (nodeSlots.next): detaches first, since they make room
// on the node (drivers such as Azure Disk and Alibaba put a VM's detaches
// before its attaches), and the node's attaches once none of its detaches
// waits or runs, then all together, up to the free slots, so that a driver
// can batch them. A woken waiter holds its slot (a claim) until its
// reconcile comes back, so a newcomer or a backoff retry cannot take it and
// make the waiters trickle in one at a time.
type nodeLimiter struct {
	limit int
	// wake queues a refused attachment again. Optional.
	wake func(waiter)

	mu    sync.Mutex
	nodes map[string]*nodeSlots
	// claims are the woken waiters holding a slot, by attachment name.
	claims map[string]claim
}

// waiter is an attachment refused for its node, and the lane it waits in.
type waiter struct {
	name   string
	detach bool
}

// claim is a slot handed to a woken waiter, and when it was handed out.
type claim struct {
	node   string
	detach bool
	at     time.Time
}

// tryAcquire takes a slot for node without waiting; when there is none, or
// the node's order puts w behind others, w is remembered for a wake.
func (l *nodeLimiter) tryAcquire(node string, w waiter) bool {
	if l == nil || l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nodes == nil {
		l.nodes = map[string]*nodeSlots{}
		l.claims = map[string]claim{}
	}
	n := l.nodes[node]
	if n == nil {
		n = &nodeSlots{}
		l.nodes[node] = n
	}
	if c, ok := l.claims[w.name]; ok && c.node == node && c.detach == w.detach {
		// Woken for this slot: it is taken whatever came meanwhile.
		delete(l.claims, w.name)
		n.unclaim(c.detach)
		n.take(w)
		return true
	}
	if !n.admits(w, l.limit) {
		n.wait(w)
		return false
	}
	n.take(w)
	return true
}

// release returns a slot taken by tryAcquire for a call of the kind given,
// and wakes the waiters the node's order gives the free slots to.
func (l *nodeLimiter) release(node string, detach bool) {
	if l == nil || l.limit <= 0 {
		return
	}
	l.mu.Lock()
	n := l.nodes[node]
	if n != nil {
		n.put(detach)
	}
	woken := l.grant(node, time.Now())
	l.mu.Unlock()
	if l.wake != nil {
		for _, w := range woken {
			l.wake(w)
		}
	}
}

// len is the number of nodes with a slot taken or claimed, or an
// attachment waiting.
func (l *nodeLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.nodes)
}

// callSlot is the right to make one CSI call for one node, within
// --max-inflight-per-node and the adaptive bound of calls in flight.
type callSlot struct {
	r        *Reconciler
	node     string
	detach   bool
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
		r.nodes.release(node, detach)
		return nil, errShuttingDown
	}
	return &callSlot{r: r, node: node, detach: detach, ticket: ticket}, nil
}

// called gives the slot back with the result of the call made with it.
func (s *callSlot) called(err error) {
	if s.returned {
		return
	}
	s.returned = true
	s.r.calls.release(s.ticket, err)
	s.r.nodes.release(s.node, s.detach)
}

// release gives back a slot no call was made with (the operation failed
// before it); after called it does nothing, so it can be deferred.
func (s *callSlot) release() {
	if s.returned {
		return
	}
	s.returned = true
	s.r.calls.releaseUnused(s.ticket)
	s.r.nodes.release(s.node, s.detach)
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
