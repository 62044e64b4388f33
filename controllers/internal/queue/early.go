package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/csi-attacher/csi-attacher/internal/cache"
)

// HoldAfterSync is how long an Early watch keeps what its handler queued
// after the informer's first list, waiting for its controller to start.
// A replica that starts leading within it (at start without leader
// election, or once the previous leader's Lease is released or expires)
// begins with a full queue at once. A standby that waits longer drops what
// it held and takes no more: after a long wait the held requests would
// mostly be objects that have long been dealt with, and a standby keeps
// nothing (see Early.Start for what it does when it leads after all).
const HoldAfterSync = time.Minute

// Early is a watch of one kind for one controller whose event handler
// joins the kind's informer before the Manager starts its caches, so the
// informer's first list passes through it while it is read.
//
// A controller's own watches (builder.Watches) join the informer only when
// the controller starts, after the Manager has waited for every cache: the
// informer then hands each of them every object it holds, one
// notification at a time, and the controller's workers start only once all
// of them are through. With 20 000 VolumeAttachments and PersistentVolumes
// and five such watches, that second pass over everything came on top of
// the list and was the largest share of the time before the first worker
// started; at 100 000 it took 1.4 s.
//
// Until the controller starts, what the handler queues is held, with its
// priority and in order, and handed to the controller's queue when it
// starts (Start). After that the handler queues directly.
type Early struct {
	ctx        context.Context
	informer   crcache.Informer
	handler    handler.EventHandler
	predicates []predicate.Predicate
	holdFor    time.Duration
	// kind names the watched kind in the controller's log.
	kind string

	mu sync.Mutex
	// reg is the handler's registration with the informer.
	reg toolscache.ResourceEventHandlerRegistration
	// queue is the controller's, once it started; nil until then.
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	held  held
	// dropped says the hold ended (holdFor after the first list) before
	// the controller started.
	dropped bool
	// started is closed by Start.
	started chan struct{}
}

var _ source.TypedSyncingSource[reconcile.Request] = (*Early)(nil)

// NewEarly registers h, behind predicates, on the informer of obj's kind.
// It must be called before the Manager starts its caches to take effect
// (it still works after, like builder.Watches). ctx bounds the handler's
// calls and the hold.
func NewEarly(ctx context.Context, c cache.InformerSource, obj client.Object, h handler.EventHandler, predicates ...predicate.Predicate) (*Early, error) {
	return newEarly(ctx, c, obj, HoldAfterSync, h, predicates...)
}

func newEarly(ctx context.Context, c cache.InformerSource, obj client.Object, holdFor time.Duration, h handler.EventHandler, predicates ...predicate.Predicate) (*Early, error) {
	// Before the Manager starts, GetInformer only creates the informer; it
	// must not wait for a sync that cannot happen yet.
	inf, err := c.GetInformer(ctx, obj, crcache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("no informer for %T: %w", obj, err)
	}
	e := &Early{
		ctx:        ctx,
		informer:   inf,
		handler:    h,
		predicates: predicates,
		holdFor:    holdFor,
		kind:       fmt.Sprintf("%T", obj),
		started:    make(chan struct{}),
	}
	e.reg, err = inf.AddEventHandler(events{e})
	if err != nil {
		return nil, fmt.Errorf("cannot watch %T: %w", obj, err)
	}
	go e.endHold()
	return e, nil
}

// endHold drops what is held, and stops holding, holdFor after the first
// list reached the handler, unless the controller started by then.
func (e *Early) endHold() {
	if waitSynced(e.ctx, e.registration()) != nil {
		return
	}
	timer := time.NewTimer(e.holdFor)
	defer timer.Stop()
	select {
	case <-e.started:
		return
	case <-e.ctx.Done():
		return
	case <-timer.C:
	}
	e.mu.Lock()
	if e.queue != nil {
		e.mu.Unlock()
		return
	}
	e.dropped = true
	e.held = held{}
	reg := e.reg
	e.mu.Unlock()
	// A standby's handler has nothing to do until it leads.
	_ = e.informer.RemoveEventHandler(reg)
}

func (e *Early) registration() toolscache.ResourceEventHandlerRegistration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reg
}

// Start hands what was held to the controller's queue q, in the order it
// was queued and with its priority, and from then on the handler queues to
// q. If the hold had ended, the handler joins the informer again, which
// hands it every object it holds, as a watch joining late does.
func (e *Early) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queue != nil {
		return errors.New("an Early watch can be started only once")
	}
	close(e.started)
	e.queue = q
	if e.dropped {
		reg, err := e.informer.AddEventHandler(events{e})
		if err != nil {
			return err
		}
		e.reg = reg
		return nil
	}
	e.held.drain(q)
	return nil
}

// String names the source in the controller's "Starting EventSource" log.
func (e *Early) String() string { return "early kind source: " + e.kind }

// WaitForSync returns once the informer's first list has passed through
// the handler.
func (e *Early) WaitForSync(ctx context.Context) error {
	err := waitSynced(ctx, e.registration())
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("timed out waiting for the informer's list to reach the handler: %w", err)
}

// syncPoll is how often waitSynced looks: the workers start no sooner than
// its next look after the handler is through the list.
const syncPoll = 10 * time.Millisecond

// waitSynced waits until the informer's first list has passed through the
// handler of reg, or ctx ends (its error).
func waitSynced(ctx context.Context, reg toolscache.ResourceEventHandlerRegistration) error {
	return wait.PollUntilContextCancel(ctx, syncPoll, true, func(context.Context) (bool, error) {
		return reg.HasSynced(), nil
	})
}

// add is where every request the handler queues ends: the controller's
// queue once it started, held before that, nowhere once the hold ended.
func (e *Early) add(opts priorityqueue.AddOpts, reqs ...reconcile.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.queue != nil:
		addTo(e.queue, opts, reqs...)
	case !e.dropped:
		priority := 0
		if opts.Priority != nil {
			priority = *opts.Priority
		}
		for _, r := range reqs {
			e.held.add(r, priority)
		}
	}
}

// addTo queues reqs on q with opts, or plainly on a queue without
// priorities.
func addTo(q workqueue.TypedRateLimitingInterface[reconcile.Request], opts priorityqueue.AddOpts, reqs ...reconcile.Request) {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(opts, reqs...)
		return
	}
	for _, r := range reqs {
		switch {
		case opts.RateLimited:
			q.AddRateLimited(r)
		case opts.After > 0:
			q.AddAfter(r, opts.After)
		default:
			q.Add(r)
		}
	}
}

// held is the requests queued before the controller started, in order,
// each once, with the highest priority it was queued at: what the
// priority queue itself would have made of them.
type held struct {
	order    []reconcile.Request
	priority map[reconcile.Request]int
}

func (h *held) add(r reconcile.Request, priority int) {
	if h.priority == nil {
		h.priority = map[reconcile.Request]int{}
	}
	old, ok := h.priority[r]
	if !ok {
		h.order = append(h.order, r)
	}
	if !ok || priority > old {
		h.priority[r] = priority
	}
}

func (h *held) drain(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, r := range h.order {
		p := h.priority[r]
		addTo(q, priorityqueue.AddOpts{Priority: &p}, r)
	}
	*h = held{}
}

// heldQueue is the queue the handler is given: it sends every request to
// Early.add, which decides where it goes at the moment it is queued, so
// nothing queued while the controller starts is lost. Only the adding
// methods are used by event handlers; the rest belong to the controller's
// own queue.
type heldQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	e *Early
}

func (q heldQueue) Add(r reconcile.Request) { q.e.add(priorityqueue.AddOpts{}, r) }

func (q heldQueue) AddAfter(r reconcile.Request, d time.Duration) {
	q.e.add(priorityqueue.AddOpts{After: d}, r)
}

func (q heldQueue) AddRateLimited(r reconcile.Request) {
	q.e.add(priorityqueue.AddOpts{RateLimited: true}, r)
}

func (q heldQueue) AddWithOpts(o priorityqueue.AddOpts, reqs ...reconcile.Request) {
	q.e.add(o, reqs...)
}

// events turns the informer's notifications into controller-runtime
// events, filtered by the predicates, for the handler, as a controller's
// own watch does.
//
// Until the controller starts, the handler is told what a watch joining at
// the start would have been told: every object as a creation from the
// initial list, in its latest state, and nothing of the objects deleted
// meanwhile. The predicates rely on it: the lanes map the initial list's
// PersistentVolumes, CSINodes and Secrets to no attachment (their own
// initial list queues every attachment with work to do), and so do not
// queue an attachment a second time, after its first reconcile, for an
// object created before the controller started.
type events struct{ e *Early }

// isStarted tells whether the controller has started.
func (e *Early) isStarted() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.queue != nil
}

func (h events) queue() heldQueue { return heldQueue{e: h.e} }

// pass tells whether every predicate lets the event through.
func (h events) pass(lets func(predicate.Predicate) bool) bool {
	for _, p := range h.e.predicates {
		if !lets(p) {
			return false
		}
	}
	return true
}

func (h events) OnAdd(obj any, isInInitialList bool) {
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	ev := event.CreateEvent{Object: o, IsInInitialList: isInInitialList || !h.e.isStarted()}
	if !h.pass(func(p predicate.Predicate) bool { return p.Create(ev) }) {
		return
	}
	h.e.handler.Create(h.e.ctx, ev, h.queue())
}

func (h events) OnUpdate(oldObj, newObj any) {
	o, okOld := oldObj.(client.Object)
	n, okNew := newObj.(client.Object)
	if !okOld || !okNew {
		return
	}
	if !h.e.isStarted() {
		h.OnAdd(n, true)
		return
	}
	ev := event.UpdateEvent{ObjectOld: o, ObjectNew: n}
	if !h.pass(func(p predicate.Predicate) bool { return p.Update(ev) }) {
		return
	}
	h.e.handler.Update(h.e.ctx, ev, h.queue())
}

func (h events) OnDelete(obj any) {
	if !h.e.isStarted() {
		return
	}
	ev := event.DeleteEvent{}
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		ev.DeleteStateUnknown = true
		obj = tomb.Obj
	}
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	ev.Object = o
	if !h.pass(func(p predicate.Predicate) bool { return p.Delete(ev) }) {
		return
	}
	h.e.handler.Delete(h.e.ctx, ev, h.queue())
}
