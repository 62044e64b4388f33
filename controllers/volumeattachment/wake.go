package volumeattachment

import (
	"context"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// wakeBuffer is how many wakes may wait for their lane's queue. A wake that
// does not fit is dropped: the attachment still has its backoff.
const wakeBuffer = 1024

// wakers queue an attachment refused for a busy node again as soon as the
// node's order gives it a slot (nodeLimiter), in the lane it was refused in.
type wakers struct {
	attach, detach chan event.GenericEvent
}

func newWakers() *wakers {
	return &wakers{attach: make(chan event.GenericEvent, wakeBuffer), detach: make(chan event.GenericEvent, wakeBuffer)}
}

// wake queues w without blocking: it runs when a CSI call ends.
func (k *wakers) wake(w waiter) {
	ch := k.attach
	if w.detach {
		ch = k.detach
	}
	select {
	case ch <- event.GenericEvent{Object: &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: w.name}}}:
	default:
	}
}

// source is the lane's end of its channel.
func (k *wakers) source(detach bool) source.Source {
	ch := k.attach
	if detach {
		ch = k.detach
	}
	return source.Channel[client.Object](ch, &handler.EnqueueRequestForObject{})
}

// stopChannel is the controller's Done channel that withStop kept, nil
// outside a reconcile (it never closes then).
func stopChannel(ctx context.Context) <-chan struct{} {
	g, _ := ctx.Value(stopKey{}).(gate)
	return g.stop
}

// nodeSlots is one node's share of nodeLimiter: its calls in flight, the
// slots claimed by woken waiters, and the waiters, in arrival order.
type nodeSlots struct {
	// used counts the calls holding a slot, detaching the detaches of them.
	used, detaching int
	// claimed counts the slots handed to woken waiters that have not come
	// back yet, claimedDetaches the detaches of them.
	claimed, claimedDetaches int
	// order holds the waiters in arrival order; an entry no longer in
	// waiting (it got a slot meanwhile) is skipped and dropped.
	order   []waiter
	waiting map[waiter]bool
}

// admits says whether w may take a slot now: one must be free (neither in
// use nor claimed), and an attach goes only while none of the node's
// detaches waits, is woken or runs. A detach is never held back by
// attaches: it makes room.
func (n *nodeSlots) admits(w waiter, limit int) bool {
	if n.used+n.claimed >= limit {
		return false
	}
	return w.detach || !n.detachesPending()
}

// detachesPending reports whether a detach of the node waits, is woken or
// runs.
func (n *nodeSlots) detachesPending() bool {
	if n.detaching > 0 || n.claimedDetaches > 0 {
		return true
	}
	for w := range n.waiting {
		if w.detach {
			return true
		}
	}
	return false
}

// wait remembers w, once, behind the waiters already there.
func (n *nodeSlots) wait(w waiter) {
	if n.waiting == nil {
		n.waiting = map[waiter]bool{}
	}
	if !n.waiting[w] {
		n.waiting[w] = true
		n.order = append(n.order, w)
	}
}

// take gives w a slot; it waits no more.
func (n *nodeSlots) take(w waiter) {
	n.used++
	if w.detach {
		n.detaching++
	}
	delete(n.waiting, w)
}

// put returns a slot of a call that ended.
func (n *nodeSlots) put(detach bool) {
	n.used = max(n.used-1, 0)
	if detach {
		n.detaching = max(n.detaching-1, 0)
	}
}

// unclaim returns a claimed slot: its waiter took it or will not.
func (n *nodeSlots) unclaim(detach bool) {
	n.claimed = max(n.claimed-1, 0)
	if detach {
		n.claimedDetaches = max(n.claimedDetaches-1, 0)
	}
}

// next hands the free slots to waiters in the node's order and returns
// them, each now holding a claim: the oldest detaches first; the oldest
// attaches only once no detach of the node waits, is woken or runs, and
// then as many as there are free slots at once, so they reach the driver
// together. skip drops a waiter that may not be woken (it holds a claim
// already).
func (n *nodeSlots) next(limit int, skip func(waiter) bool) []waiter {
	var woken []waiter
	for free := limit - n.used - n.claimed; free > 0; {
		w, ok := n.pop(true)
		if !ok && n.detaching == 0 && n.claimedDetaches == 0 {
			w, ok = n.pop(false)
		}
		if !ok {
			break
		}
		if skip(w) {
			continue
		}
		n.claimed++
		if w.detach {
			n.claimedDetaches++
		}
		woken = append(woken, w)
		free--
	}
	return woken
}

// pop removes and returns the oldest waiter of the kind given, dropping the
// entries of waiters served meanwhile.
func (n *nodeSlots) pop(detach bool) (waiter, bool) {
	kept := n.order[:0]
	var got waiter
	found := false
	for _, w := range n.order {
		if !n.waiting[w] {
			continue
		}
		if !found && w.detach == detach {
			got, found = w, true
			delete(n.waiting, w)
			continue
		}
		kept = append(kept, w)
	}
	clear(n.order[len(kept):])
	n.order = kept
	return got, found
}

// idle reports whether the node has nothing left to track.
func (n *nodeSlots) idle() bool {
	return n.used == 0 && n.claimed == 0 && len(n.waiting) == 0
}

// grant hands node's free slots to its waiters (nodeSlots.next), records
// their claims, and returns them to be woken; l.mu is held.
func (l *nodeLimiter) grant(node string, now time.Time) []waiter {
	n := l.nodes[node]
	if n == nil {
		return nil
	}
	woken := n.next(l.limit, func(w waiter) bool {
		_, claimed := l.claims[w.name]
		return claimed
	})
	for _, w := range woken {
		l.claims[w.name] = claim{node: node, detach: w.detach, at: now}
	}
	if n.idle() {
		delete(l.nodes, node)
	}
	return woken
}

// settle ends a reconcile of the attachment name that started at since: a
// slot it was woken for before that and did not take (it had nothing to
// call, or failed before its call) goes to the next waiter. A claim handed
// out after since is kept: the wake that brings its reconcile is still
// queued.
func (l *nodeLimiter) settle(name string, since time.Time) {
	if l == nil || l.limit <= 0 {
		return
	}
	l.mu.Lock()
	c, ok := l.claims[name]
	if !ok || !c.at.Before(since) {
		l.mu.Unlock()
		return
	}
	delete(l.claims, name)
	var woken []waiter
	if n := l.nodes[c.node]; n != nil {
		n.unclaim(c.detach)
		woken = l.grant(c.node, time.Now())
	}
	l.mu.Unlock()
	if l.wake != nil {
		for _, w := range woken {
			l.wake(w)
		}
	}
}
