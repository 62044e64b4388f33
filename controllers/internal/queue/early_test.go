package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// informerSource hands out one real client-go informer over a fake list
// and watch of VolumeAttachments.
type informerSource struct {
	informer toolscache.SharedIndexInformer
	watcher  *watch.FakeWatcher
}

func newInformerSource(names ...string) *informerSource {
	list := &storagev1.VolumeAttachmentList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
	for _, n := range names {
		list.Items = append(list.Items, *attachment(n, false))
	}
	fw := watch.NewFake()
	lw := &toolscache.ListWatch{
		ListWithContextFunc:  func(context.Context, metav1.ListOptions) (runtime.Object, error) { return list.DeepCopy(), nil },
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return fw, nil },
	}
	return &informerSource{
		informer: toolscache.NewSharedIndexInformer(listThenWatch{lw}, &storagev1.VolumeAttachment{}, 0, toolscache.Indexers{}),
		watcher:  fw,
	}
}

// listThenWatch keeps the reflector to a list and a watch: the fake
// watch sends no bookmark, which a streaming list waits for.
type listThenWatch struct{ *toolscache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

func (s *informerSource) GetInformer(_ context.Context, _ client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	o := crcache.InformerGetOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	// Before the Manager starts, a wait for the informer's sync would
	// never end.
	if o.BlockUntilSynced == nil || *o.BlockUntilSynced {
		return nil, errors.New("GetInformer asked to wait for the sync")
	}
	return s.informer, nil
}

func (s *informerSource) run(t *testing.T, ctx context.Context) {
	t.Helper()
	go s.informer.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced) {
		t.Fatal("the informer did not sync")
	}
}

// counting is byState, counting the events it is handed.
type counting struct {
	handler.EventHandler
	calls atomic.Int64
}

func (c *counting) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	c.calls.Add(1)
	c.EventHandler.Create(ctx, e, q)
}

func (c *counting) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	c.calls.Add(1)
	c.EventHandler.Update(ctx, e, q)
}

func newCounting() *counting {
	return &counting{EventHandler: ByState(func(o client.Object) bool {
		va, ok := o.(*storagev1.VolumeAttachment)
		return ok && va.Status.Attached
	})}
}

// drainWithPriority takes every item the queue has ready, in the order it
// hands them out, with their priorities.
func drainWithPriority(t *testing.T, q priorityqueue.PriorityQueue[reconcile.Request]) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		item, priority, _ := q.GetWithPriority()
		got = append(got, fmt.Sprintf("%s@%d", item.Name, priority))
		q.Done(item)
	}
	return got
}

func request(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEarlyHandsTheFirstListOverOnceAtStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newInformerSource("a", "b", "c")
	h := newCounting()
	e, err := newEarly(ctx, src, &storagev1.VolumeAttachment{}, time.Hour, h)
	if err != nil {
		t.Fatal(err)
	}
	src.run(t, ctx)
	if err := e.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	// The list went through the handler while it was read, before the
	// controller started.
	if got := h.calls.Load(); got != 3 {
		t.Errorf("handler calls before the start = %d, want 3", got)
	}
	if got := len(e.held.order); got != 3 {
		t.Errorf("held before the start = %d, want 3", got)
	}

	q := newTestQueue(t)
	if err := e.Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	// A watch that joins only now would be handed the three objects
	// again.
	if got := h.calls.Load(); got != 3 {
		t.Errorf("handler calls = %d, want 3 (the list once, no second pass at start)", got)
	}
	if got := q.Len(); got != 3 {
		t.Fatalf("queue length = %d, want 3", got)
	}
	got := drainWithPriority(t, q)
	want := map[string]bool{"a@0": true, "b@0": true, "c@0": true}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected item %s in %v", g, got)
		}
	}

	// After the start, events go straight to the queue.
	src.watcher.Add(attachment("d", false))
	waitFor(t, "d to be queued", func() bool { return q.Len() == 1 })
	if got := drainWithPriority(t, q); len(got) != 1 || got[0] != "d@0" {
		t.Errorf("after the start: got %v, want [d@0]", got)
	}
}

func TestEarlyHoldsInOrderWithTheHighestPriority(t *testing.T) {
	e := &Early{started: make(chan struct{})}
	hq := heldQueue{e: e}
	idle, pending := PriorityIdle, PriorityPending
	hq.AddWithOpts(priorityqueue.AddOpts{Priority: &idle}, request("idle"))
	hq.AddWithOpts(priorityqueue.AddOpts{Priority: &idle}, request("raised"))
	hq.Add(request("plain"))
	hq.AddWithOpts(priorityqueue.AddOpts{Priority: &pending}, request("raised"))
	hq.AddAfter(request("later"), time.Hour)
	// Queued again at a lower priority: it keeps the higher one.
	hq.AddWithOpts(priorityqueue.AddOpts{Priority: &idle}, request("plain"))

	q := newTestQueue(t)
	if err := e.Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	// Pending ones first, in the order first queued; the idle one last.
	want := []string{"raised@0", "plain@0", "later@0", fmt.Sprintf("idle@%d", PriorityIdle)}
	got := drainWithPriority(t, q)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queue order = %v, want %v", got, want)
	}
	if err := e.Start(context.Background(), q); err == nil {
		t.Error("a second Start succeeded")
	}
}

func TestEarlyLosesNothingQueuedWhileItStarts(t *testing.T) {
	e := &Early{started: make(chan struct{})}
	hq := heldQueue{e: e}
	q := newTestQueue(t)
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			hq.Add(request(fmt.Sprint(i)))
		}
	}()
	time.Sleep(time.Millisecond)
	if err := e.Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := q.Len(); got != n {
		t.Errorf("queued %d, want %d", got, n)
	}
}

func TestEarlyStandbyDropsWhatItHeldAndListsWhenItLeads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newInformerSource("a", "b")
	h := newCounting()
	e, err := newEarly(ctx, src, &storagev1.VolumeAttachment{}, 20*time.Millisecond, h)
	if err != nil {
		t.Fatal(err)
	}
	src.run(t, ctx)
	waitFor(t, "the hold to end", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.dropped
	})
	if n := len(e.held.order); n != 0 {
		t.Errorf("a standby still holds %d requests", n)
	}
	// A standby's handler is off the informer: events cost it nothing.
	before := h.calls.Load()
	src.watcher.Add(attachment("c", false))
	waitFor(t, "the informer to see c", func() bool {
		_, ok, _ := src.informer.GetStore().GetByKey("c")
		return ok
	})
	time.Sleep(50 * time.Millisecond)
	if got := h.calls.Load(); got != before {
		t.Errorf("the standby's handler was called %d times after the hold ended", got-before)
	}

	// Leading at last: the informer hands everything it holds.
	q := newTestQueue(t)
	if err := e.Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a, b and c to be queued", func() bool { return q.Len() == 3 })
	src.watcher.Add(attachment("d", false))
	waitFor(t, "d to be queued", func() bool { return q.Len() == 4 })
}

func TestEarlyAppliesThePredicates(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newInformerSource("keep-1", "drop", "keep-2")
	onlyKeep := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() != "drop" })
	e, err := newEarly(ctx, src, &storagev1.VolumeAttachment{}, time.Hour, newCounting(), onlyKeep)
	if err != nil {
		t.Fatal(err)
	}
	src.run(t, ctx)
	if err := e.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	q := newTestQueue(t)
	if err := e.Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	got := drainWithPriority(t, q)
	if len(got) != 2 {
		t.Errorf("queued %v, want keep-1 and keep-2 only", got)
	}
	src.watcher.Modify(attachment("drop", true))
	src.watcher.Modify(attachment("keep-1", false))
	waitFor(t, "keep-1's update to be queued", func() bool { return q.Len() == 1 })
	if got := drainWithPriority(t, q); fmt.Sprint(got) != "[keep-1@0]" {
		t.Errorf("after updates: %v, want [keep-1@0]", got)
	}
}

// recording notes every event it is handed: its kind, the object's name
// and, for a creation, whether it came as part of the initial list.
type recording struct {
	mu  sync.Mutex
	got []string
}

func (r *recording) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *recording) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recording) Create(_ context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	r.note(fmt.Sprintf("create %s initial=%t", e.Object.GetName(), e.IsInInitialList))
}

func (r *recording) Update(_ context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	r.note("update " + e.ObjectNew.GetName())
}

func (r *recording) Delete(_ context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	r.note("delete " + e.Object.GetName())
}

func (r *recording) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// Before its controller starts, an Early watch tells its handler what a
// watch joining at the start would be told: the objects as they are then,
// all from the initial list. An object created in between must not come
// as a new creation: the lanes map those to the attachments using them,
// which queued an attachment a second time after its first reconcile and
// tried an attachment that can never work twice.
func TestEarlyBeforeTheStartLooksLikeTheInitialList(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newInformerSource("listed")
	rec := &recording{}
	e, err := newEarly(ctx, src, &storagev1.VolumeAttachment{}, time.Hour, rec)
	if err != nil {
		t.Fatal(err)
	}
	src.run(t, ctx)
	src.watcher.Add(attachment("created", false))
	src.watcher.Modify(attachment("listed", true))
	src.watcher.Delete(attachment("created", false))
	want := []string{"create listed initial=true", "create created initial=true", "create listed initial=true"}
	waitFor(t, "the events before the start", func() bool { return len(rec.events()) >= len(want) })
	time.Sleep(20 * time.Millisecond)
	if got := rec.events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("before the start: %q, want %q", got, want)
	}

	if err := e.Start(ctx, newTestQueue(t)); err != nil {
		t.Fatal(err)
	}
	src.watcher.Add(attachment("new", false))
	src.watcher.Modify(attachment("new", true))
	src.watcher.Delete(attachment("new", true))
	want = append(want, "create new initial=false", "update new", "delete new")
	waitFor(t, "the events after the start", func() bool { return len(rec.events()) >= len(want) })
	if got := rec.events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the start: %q, want %q", got, want)
	}
}
