package volumeattachment

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeClock is a clock the tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// closed is a stop channel that is already closed: acquire with it takes a
// free slot and returns at once instead of waiting for one.
func closed() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

var exhausted = status.Error(codes.ResourceExhausted, "the node has no room for another volume")

func TestCallLimiterBound(t *testing.T) {
	type step struct {
		advance time.Duration
		// calls calls are made at once, round-robin over nodes, and all
		// end with err. The attachments had failed before when retry is set.
		calls int
		nodes []string
		err   error
		retry bool
		limit int // the bound after the step
	}
	nodes := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{{
		name: "full nodes hours apart never lower the bound",
		max:  8,
		steps: []step{
			{calls: 6, nodes: []string{"a"}, err: exhausted, limit: 8},
			{advance: 2 * time.Hour, calls: 6, nodes: []string{"b"}, err: exhausted, limit: 8},
			{advance: 2 * time.Hour, calls: 6, nodes: []string{"c"}, err: exhausted, limit: 8},
			{advance: time.Minute, calls: 6, nodes: []string{"d"}, err: exhausted, limit: 8},
			// And their volumes retrying, every few seconds, for hours.
			{advance: 5 * time.Second, calls: 8, nodes: []string{"a", "b", "c", "d"}, err: exhausted, retry: true, limit: 8},
			{advance: 5 * time.Second, calls: 8, nodes: []string{"a", "b", "c", "d"}, err: exhausted, retry: true, limit: 8},
			{advance: time.Hour, calls: 8, nodes: []string{"a", "b", "c", "d"}, err: exhausted, retry: true, limit: 8},
		},
	}, {
		name: "full nodes during a rollout do not lower the bound",
		max:  8,
		steps: []step{
			{calls: 40, nodes: nodes("healthy", 17), limit: 8},
			{calls: 20, nodes: nodes("full", 3), err: exhausted, limit: 8},
			{calls: 40, nodes: nodes("healthy", 17), limit: 8},
			// Then only the stuck attachments retry: no new evidence.
			{advance: 2 * time.Second, calls: 20, nodes: nodes("full", 3), err: exhausted, retry: true, limit: 8},
			{advance: 20 * time.Second, calls: 20, nodes: nodes("full", 3), err: exhausted, retry: true, limit: 8},
		},
	}, {
		name: "two full nodes do not lower the bound even when nothing else is called",
		max:  8,
		steps: []step{
			{calls: 20, nodes: []string{"a", "b"}, err: exhausted, limit: 8},
		},
	}, {
		name: "many nodes refused within a window lower the bound, and again on new evidence",
		max:  8,
		steps: []step{
			{calls: 4, nodes: nodes("n", 10), limit: 8},
			// Most of the window's calls, on 6 nodes.
			{calls: 6, nodes: nodes("n", 10), err: exhausted, limit: 4},
			// The calls made after the decrease are new evidence.
			{advance: time.Second, calls: 12, nodes: nodes("n", 10), err: exhausted, limit: 2},
			{advance: time.Second, calls: 12, nodes: nodes("n", 10), err: exhausted, limit: 1},
			{advance: time.Second, calls: 12, nodes: nodes("n", 10), err: exhausted, limit: 1},
		},
	}, {
		name: "evidence expires",
		max:  8,
		steps: []step{
			{calls: 6, nodes: nodes("early", 3), err: exhausted, limit: 8},
			{advance: throttleWindow + time.Second, calls: 6, nodes: nodes("late", 3), err: exhausted, limit: 8},
			// Within one window the two would have been enough.
			{advance: time.Second, calls: 6, nodes: nodes("later", 3), err: exhausted, limit: 4},
		},
	}, {
		name: "mostly successes is no signal",
		max:  8,
		steps: []step{
			{calls: 11, nodes: nodes("n", 10), limit: 8},
			{calls: 10, nodes: nodes("n", 10), err: exhausted, limit: 8},
		},
	}, {
		name: "recovers by itself, a doubling per quiet window",
		max:  8,
		steps: []step{
			{calls: 12, nodes: nodes("n", 4), err: exhausted, limit: 4},
			{calls: 12, nodes: nodes("n", 4), err: exhausted, limit: 2},
			{advance: throttleWindow - time.Second, calls: 1, nodes: nodes("n", 4), err: exhausted, retry: true, limit: 2},
			{advance: time.Second, calls: 1, nodes: nodes("n", 4), err: exhausted, retry: true, limit: 4},
			{advance: throttleWindow, calls: 1, nodes: nodes("n", 4), err: exhausted, retry: true, limit: 8},
		},
	}, {
		name: "each success raises the bound by one",
		max:  8,
		steps: []step{
			{calls: 12, nodes: nodes("n", 4), err: exhausted, limit: 4},
			{calls: 1, nodes: nodes("n", 4), limit: 5},
			{calls: 2, nodes: nodes("n", 4), limit: 7},
			{calls: 4, nodes: nodes("n", 4), limit: 8},
		},
	}, {
		name: "other errors are no evidence",
		max:  8,
		steps: []step{
			{calls: 30, nodes: nodes("n", 10), err: status.Error(codes.Internal, "boom"), limit: 8},
			{calls: 30, nodes: nodes("n", 10), err: errors.New("not a gRPC error"), limit: 8},
			{calls: 30, nodes: nodes("n", 10), err: status.Error(codes.Unavailable, "gone"), limit: 8},
		},
	}, {
		name:  "no limit",
		max:   0,
		steps: []step{{calls: 100, nodes: nodes("n", 10), err: exhausted, limit: 0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l := newCallLimiter(tt.max, nil)
			l.now = clock.now
			for i, s := range tt.steps {
				clock.advance(s.advance)
				// The calls run one at a time, so the bound is never in
				// the way; concurrency is TestCallLimiterWaits'.
				for c := range s.calls {
					ticket, ok := l.acquire(closed(), s.nodes[c%len(s.nodes)], !s.retry)
					if !ok {
						t.Fatalf("step %d: call %d found no slot", i, c)
					}
					l.release(ticket, s.err)
				}
				if l.limit != s.limit {
					t.Fatalf("step %d: bound = %d, want %d", i, l.limit, s.limit)
				}
			}
		})
	}
}

// Calls that started before a decrease are not evidence for the next one:
// a burst of refusals halves the bound once, not once per call.
func TestCallLimiterHalvesOncePerBurst(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	l := newCallLimiter(64, nil)
	l.now = clock.now
	var tickets []callTicket
	for i := range 64 {
		ticket, ok := l.acquire(closed(), fmt.Sprintf("n-%d", i%8), true)
		if !ok {
			t.Fatalf("call %d found no slot", i)
		}
		tickets = append(tickets, ticket)
	}
	clock.advance(time.Second)
	for _, ticket := range tickets {
		l.release(ticket, exhausted)
	}
	if l.limit != 32 {
		t.Fatalf("bound = %d, want 32 (halved once)", l.limit)
	}
}

func TestCallLimiterWaits(t *testing.T) {
	l := newCallLimiter(2, nil)
	t1, _ := l.acquire(nil, "a", true)
	t2, _ := l.acquire(nil, "b", true)
	if _, ok := l.acquire(closed(), "c", true); ok {
		t.Fatal("a third call got a slot beyond the bound of 2")
	}
	if len(l.waiting) != 0 {
		t.Fatalf("a caller that stopped is still waiting: %d", len(l.waiting))
	}

	// Two callers wait; they get slots in arrival order as calls end.
	order := make(chan string, 2)
	for _, name := range []string{"first", "second"} {
		queued := len(l.waiting)
		go func() {
			ticket, ok := l.acquire(nil, name, true)
			if ok {
				order <- name
				l.release(ticket, nil)
			}
		}()
		waitUntil(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.waiting) > queued })
	}
	l.release(t1, nil)
	if got := <-order; got != "first" {
		t.Fatalf("%s got the freed slot, want first", got)
	}
	l.release(t2, nil)
	if got := <-order; got != "second" {
		t.Fatalf("%s got the freed slot, want second", got)
	}
	waitUntil(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.inflight == 0 })
}

// A caller that stops waiting after it was handed a slot gives the slot
// back: nothing leaks.
func TestCallLimiterStopAfterGrant(t *testing.T) {
	l := newCallLimiter(1, nil)
	t1, _ := l.acquire(nil, "a", true)
	stop := make(chan struct{})
	result := make(chan bool)
	go func() {
		_, ok := l.acquire(stop, "b", true)
		result <- ok
	}()
	waitUntil(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.waiting) == 1 })
	close(stop)
	l.release(t1, nil)
	if ok := <-result; ok {
		// Granted first: the caller holds it and must release it.
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inflight != 1 {
			t.Fatalf("inflight = %d, want 1", l.inflight)
		}
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight != 0 || len(l.waiting) != 0 {
		t.Fatalf("after a stopped wait: inflight = %d, waiting = %d, want 0 and 0", l.inflight, len(l.waiting))
	}
}

func TestCallLimiterReportsChanges(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	var got []int
	l := newCallLimiter(4, func(limit int, lowered bool) {
		if lowered {
			limit = -limit
		}
		got = append(got, limit)
	})
	l.now = clock.now
	for i := range 10 {
		ticket, _ := l.acquire(nil, fmt.Sprintf("n-%d", i%3), true)
		l.release(ticket, exhausted)
	}
	clock.advance(throttleWindow)
	ticket, _ := l.acquire(nil, "a", false)
	l.release(ticket, exhausted)
	if fmt.Sprint(got) != "[-2 4]" {
		t.Fatalf("changes = %v, want [-2 4] (lowered to 2, back at 4)", got)
	}
}

// A slot taken for an operation that failed before its call counts for
// nothing.
func TestCallLimiterUnusedSlot(t *testing.T) {
	l := newCallLimiter(4, nil)
	for i := range 30 {
		ticket, _ := l.acquire(nil, fmt.Sprintf("n-%d", i%5), true)
		l.releaseUnused(ticket)
	}
	if l.limit != 4 || l.inflight != 0 || len(l.results) != 0 {
		t.Fatalf("bound %d, inflight %d, results %d; want 4, 0, 0", l.limit, l.inflight, len(l.results))
	}
}

func TestNodeLimiterWakesWaiters(t *testing.T) {
	var woken []waiter
	l := &nodeLimiter{limit: 1, wake: func(w waiter) { woken = append(woken, w) }}
	a, b, c := waiter{name: "a"}, waiter{name: "b"}, waiter{name: "c", detach: true}
	if !l.tryAcquire("n", a) {
		t.Fatal("the first call found no slot")
	}
	if !l.tryAcquire("other", b) {
		t.Fatal("another node's call found no slot")
	}
	l.release("other", false)
	for _, w := range []waiter{b, c, b} {
		if l.tryAcquire("n", w) {
			t.Fatalf("%v got a second slot of node n", w)
		}
	}
	if len(woken) != 0 {
		t.Fatalf("woken %v before any call of node n ended", woken)
	}
	// One call ended: the detach is woken first, once, though it came
	// after b.
	l.release("n", false)
	if fmt.Sprint(woken) != fmt.Sprint([]waiter{c}) {
		t.Fatalf("woken %v, want [c]", woken)
	}
	// b's backoff brings it back first: the slot is c's.
	if l.tryAcquire("n", b) {
		t.Fatal("b took the slot c was woken for")
	}
	if !l.tryAcquire("n", c) {
		t.Fatal("the woken waiter found no slot")
	}
	l.release("n", true)
	if fmt.Sprint(woken) != fmt.Sprint([]waiter{c, b}) {
		t.Fatalf("woken %v, want [c b]", woken)
	}
	if !l.tryAcquire("n", b) {
		t.Fatal("b found no slot")
	}
	l.release("n", false)
	if len(woken) != 2 {
		t.Fatalf("woken %v, want nobody more", woken)
	}
	if n := l.len(); n != 0 {
		t.Fatalf("%d nodes still tracked", n)
	}
}

// A woken waiter's slot is kept for it until its reconcile ends; one that
// ends without taking it (nothing to call) passes it on.
func TestNodeLimiterClaims(t *testing.T) {
	var woken []waiter
	l := &nodeLimiter{limit: 2, wake: func(w waiter) { woken = append(woken, w) }}
	x, y, a, b, c := waiter{name: "x"}, waiter{name: "y"}, waiter{name: "a"}, waiter{name: "b"}, waiter{name: "c"}
	l.tryAcquire("n", x)
	l.tryAcquire("n", y)
	beforeWake := time.Now()
	for _, w := range []waiter{a, b} {
		if l.tryAcquire("n", w) {
			t.Fatalf("%v found a slot of a full node", w)
		}
	}
	time.Sleep(time.Millisecond)
	l.release("n", false) // wakes a
	if l.tryAcquire("n", c) {
		t.Fatal("a newcomer took the slot a was woken for")
	}
	// The reconcile that refused a ends after the wake: the claim stays
	// for the reconcile the wake brings.
	l.settle("a", beforeWake.Add(-time.Second))
	l.settle("a", beforeWake)
	if fmt.Sprint(woken) != fmt.Sprint([]waiter{a}) {
		t.Fatalf("woken %v, want [a]", woken)
	}
	// That reconcile had nothing to call: the slot goes to b.
	l.settle("a", time.Now().Add(time.Millisecond))
	if fmt.Sprint(woken) != fmt.Sprint([]waiter{a, b}) {
		t.Fatalf("woken %v, want [a b]", woken)
	}
	if !l.tryAcquire("n", b) {
		t.Fatal("b found no slot")
	}
	for _, node := range []string{"n", "n", "n"} {
		l.release(node, false)
	}
	// c waited too: woken at the first free slot and never taken it.
	l.settle("c", time.Now().Add(time.Millisecond))
	if n := l.len(); n != 0 {
		t.Fatalf("%d nodes still tracked", n)
	}
}

// The node's order, pure: who gets the free slots, and who may take one
// without waiting.
func TestNodeSlotsOrder(t *testing.T) {
	a1, a2, a3, a4, a5 := waiter{name: "a1"}, waiter{name: "a2"}, waiter{name: "a3"}, waiter{name: "a4"}, waiter{name: "a5"}
	d1, d2 := waiter{name: "d1", detach: true}, waiter{name: "d2", detach: true}
	tests := []struct {
		name                string
		limit               int
		used, detaching     int
		claimed, claimedDet int
		waiting             []waiter
		served              []waiter // got a slot meanwhile
		skip                []waiter // hold a claim already
		want                []waiter
	}{
		{name: "detaches before attaches, whatever their arrival", limit: 2, used: 1, waiting: []waiter{a1, d1, a2, d2}, want: []waiter{d1}},
		{name: "every free slot to the detaches, none to the attaches beside them", limit: 3, waiting: []waiter{a1, d1, a2, d2}, want: []waiter{d1, d2}},
		{name: "attaches wait while a detach of the node runs", limit: 4, used: 1, detaching: 1, waiting: []waiter{a1, a2}},
		{name: "attaches wait while a detach of the node is woken", limit: 4, claimed: 1, claimedDet: 1, waiting: []waiter{a1, a2}},
		{name: "attaches together, up to the free slots, once the detaches are done", limit: 4, waiting: []waiter{a1, a2, a3, a4, a5}, want: []waiter{a1, a2, a3, a4}},
		{name: "claimed slots are not free", limit: 2, claimed: 2, waiting: []waiter{d1}},
		{name: "a waiter served meanwhile is skipped", limit: 1, waiting: []waiter{a1, a2}, served: []waiter{a1}, want: []waiter{a2}},
		{name: "a waiter holding a claim is not woken again", limit: 2, waiting: []waiter{d1, d2}, skip: []waiter{d1}, want: []waiter{d2}},
		{name: "nothing waits", limit: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &nodeSlots{used: tc.used, detaching: tc.detaching, claimed: tc.claimed, claimedDetaches: tc.claimedDet}
			for _, w := range tc.waiting {
				n.wait(w)
			}
			for _, w := range tc.served {
				n.take(w)
				n.put(w.detach)
			}
			got := n.next(tc.limit, func(w waiter) bool { return slices.Contains(tc.skip, w) })
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("woken %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNodeSlotsAdmits(t *testing.T) {
	a, d := waiter{name: "a"}, waiter{name: "d", detach: true}
	tests := []struct {
		name    string
		slots   nodeSlots
		waiting []waiter
		w       waiter
		want    bool
	}{
		{name: "attach, a slot free", slots: nodeSlots{used: 1}, w: a, want: true},
		{name: "detach, a slot free while attaches wait", slots: nodeSlots{used: 1}, waiting: []waiter{{name: "x"}}, w: d, want: true},
		{name: "attach, a slot free while a detach of the node runs", slots: nodeSlots{used: 1, detaching: 1}, w: a},
		{name: "attach, a slot free while a detach of the node waits", slots: nodeSlots{used: 1}, waiting: []waiter{{name: "y", detach: true}}, w: a},
		{name: "attach, a slot free while a detach of the node is woken", slots: nodeSlots{claimed: 1, claimedDetaches: 1}, w: a},
		{name: "detach, the slots taken or claimed", slots: nodeSlots{used: 1, claimed: 1}, w: d},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.slots
			for _, w := range tc.waiting {
				n.wait(w)
			}
			if got := n.admits(tc.w, 2); got != tc.want {
				t.Fatalf("admits %v = %v, want %v", tc.w, got, tc.want)
			}
		})
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
