package volumeattachment

import (
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi"
)

// The adaptive bound of CSI calls in flight (--max-inflight) drops only when
// the driver throttles the whole cluster, never because some nodes are full.
//
// A driver answers ResourceExhausted for two different reasons: a node at
// its attach limit (the CSI spec's answer for a full node, an everyday
// event), and a backend that throttles the account (every node's calls
// fail). Only the second is helped by fewer calls at once; lowering the
// bound for the first slows every other node's volumes down while the full
// node's stay stuck. So the bound halves only on evidence that most recent
// calls, on several nodes, were refused:
//
//   - Evidence is the result of calls that ended within the last
//     throttleWindow. Older results are forgotten, so full nodes hours (or
//     minutes) apart never add up.
//   - A ResourceExhausted counts only when it is the attachment's first
//     failure (no error recorded on the VolumeAttachment yet). An attachment
//     stuck on a full node retries with its own exponential backoff; its
//     repeated refusals say nothing new, and without this rule they alone
//     would fill the window once everything else is attached.
//   - Successes always count.
//   - At least throttleMinCalls counted calls, more than half of them
//     ResourceExhausted, from at least throttleMinNodes nodes.
//   - Only calls that started after the last decrease count for the next
//     one, so one burst of refusals halves the bound once.
//
// The bound comes back by itself: every successful call raises it by one,
// and each throttleWindow without a decrease doubles it, up to the maximum.
const (
	throttleWindow   = 30 * time.Second
	throttleMinCalls = 10
	throttleMinNodes = 3
)

// callLimiter bounds the CSI calls in flight across all nodes and adapts
// the bound as described above. A call that finds the bound reached waits
// for a slot, in arrival order: every call needs one, so the wait keeps a
// worker from nothing it could do meanwhile, and the caller resumes the
// moment a call ends (no polling, no work redone).
type callLimiter struct {
	max int
	// now is the clock; tests set it.
	now func() time.Time
	// onChange, if set, is told the new bound when it halves or is back
	// at max. It is called without the lock held.
	onChange func(limit int, lowered bool)

	mu       sync.Mutex
	limit    int
	inflight int
	// waiting are the callers waiting for a slot, oldest first; a slot is
	// handed to one by closing its channel.
	waiting []chan struct{}
	// results are the counted results of the calls that ended within
	// throttleWindow, oldest first.
	results []callResult
	// changed is when the bound last halved or grew by a window's doubling.
	changed time.Time
}

// callResult is one counted call result: its node, and whether the driver
// refused it with ResourceExhausted.
type callResult struct {
	at        time.Time
	node      string
	exhausted bool
}

// callTicket is a slot taken from callLimiter, with what release needs to
// count the call's result.
type callTicket struct {
	start time.Time
	node  string
	// firstTry is set when the attachment has no failure recorded: only
	// then does a ResourceExhausted count as evidence.
	firstTry bool
}

// newCallLimiter returns a limiter of at most max calls in flight; max <= 0
// means no limit.
func newCallLimiter(max int, onChange func(limit int, lowered bool)) *callLimiter {
	return &callLimiter{max: max, limit: max, now: time.Now, onChange: onChange}
}

// acquire takes a slot, waiting in arrival order while the bound is
// reached, unless stop closes first; ok is false then.
func (l *callLimiter) acquire(stop <-chan struct{}, node string, firstTry bool) (t callTicket, ok bool) {
	if l == nil || l.max <= 0 {
		return callTicket{}, true
	}
	l.mu.Lock()
	now := l.now()
	t = callTicket{start: now, node: node, firstTry: firstTry}
	back := l.recover(now)
	if len(l.waiting) == 0 && l.inflight < l.limit {
		l.inflight++
		l.mu.Unlock()
		l.report(back, false)
		return t, true
	}
	granted := make(chan struct{})
	l.waiting = append(l.waiting, granted)
	l.mu.Unlock()
	l.report(back, false)

	select {
	case <-granted:
		// The wait counts as part of the call for the round rule: only
		// what started after a decrease is evidence for the next one.
		l.mu.Lock()
		t.start = l.now()
		l.mu.Unlock()
		return t, true
	case <-stop:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-granted:
		// Granted while stop closed: give the slot back.
		l.inflight--
		l.grant()
	default:
		for i, w := range l.waiting {
			if w == granted {
				l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
				break
			}
		}
	}
	return callTicket{}, false
}

// release returns the slot of a call that ended with err (nil for
// success), counts its result, and adapts the bound.
func (l *callLimiter) release(t callTicket, err error) {
	l.put(t, err, true)
}

// releaseUnused returns a slot no call was made with (the reconcile failed
// before it): there is no result to count.
func (l *callLimiter) releaseUnused(t callTicket) {
	l.put(t, nil, false)
}

func (l *callLimiter) put(t callTicket, err error, called bool) {
	if l == nil || l.max <= 0 {
		return
	}
	l.mu.Lock()
	now := l.now()
	l.inflight--
	var lowered, back bool
	if called {
		code, _ := csi.Code(err)
		switch {
		case err == nil:
			l.count(now, t.node, false)
			if l.limit < l.max {
				l.limit++
				back = l.limit == l.max
			}
		case code == codes.ResourceExhausted && t.firstTry && !t.start.Before(l.changed):
			l.count(now, t.node, true)
			if l.throttled() {
				l.limit = max(l.limit/2, 1)
				l.changed = now
				l.results = nil
				lowered = true
			}
		}
	}
	back = l.recover(now) || back
	l.grant()
	l.mu.Unlock()
	l.report(back, lowered)
}

// count adds one result and forgets those older than the window.
func (l *callLimiter) count(now time.Time, node string, exhausted bool) {
	l.results = append(l.results, callResult{at: now, node: node, exhausted: exhausted})
	l.expire(now)
}

// expire forgets the results older than the window.
func (l *callLimiter) expire(now time.Time) {
	old := 0
	for old < len(l.results) && now.Sub(l.results[old].at) > throttleWindow {
		old++
	}
	if old > 0 {
		// Copy rather than reslice, so the array does not grow for ever.
		l.results = append(l.results[:0:0], l.results[old:]...)
	}
}

// throttled reports whether the results in the window are a cluster-wide
// signal (see the rules at the top of this file).
func (l *callLimiter) throttled() bool {
	if len(l.results) < throttleMinCalls {
		return false
	}
	exhausted := 0
	nodes := map[string]bool{}
	for _, r := range l.results {
		if r.exhausted {
			exhausted++
			nodes[r.node] = true
		}
	}
	return 2*exhausted > len(l.results) && len(nodes) >= throttleMinNodes
}

// recover doubles a lowered bound once per quiet window, and reports
// whether it is back at max.
func (l *callLimiter) recover(now time.Time) (back bool) {
	l.expire(now)
	if l.limit >= l.max || now.Sub(l.changed) < throttleWindow {
		return false
	}
	l.limit = min(2*l.limit, l.max)
	l.changed = now
	l.grant()
	return l.limit == l.max
}

// grant hands free slots to the callers waiting, oldest first.
func (l *callLimiter) grant() {
	for len(l.waiting) > 0 && l.inflight < l.limit {
		close(l.waiting[0])
		l.waiting = l.waiting[1:]
		l.inflight++
	}
}

// report tells onChange about a decrease or a return to max.
func (l *callLimiter) report(back, lowered bool) {
	if l.onChange == nil || !back && !lowered {
		return
	}
	l.mu.Lock()
	limit := l.limit
	l.mu.Unlock()
	l.onChange(limit, lowered)
}
