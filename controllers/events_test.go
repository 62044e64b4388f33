package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

var _ = Describe("Events do not flood", func() {
	It("folds 40 failures in a row of one VolumeAttachment into a few Event objects and writes", func() {
		const (
			driverName = "events.csi.test"
			failures   = 40
		)
		ctx := context.Background()
		objs := &tracker{}
		a := startOwnAttacher(driverName, attacherOptions{})
		DeferCleanup(objs.cleanup, ctx)
		node := uniqueName("ev-node")
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))
		handle := uniqueName("ev-vol")
		a.driver.InjectError(fake.MethodPublish, handle, codes.Unavailable, 0)
		DeferCleanup(a.driver.ClearFaults)
		pv := newPV(uniqueName("ev-pv"), driverName, handle)
		objs.create(ctx, pv)
		vaName := uniqueName("ev-va")

		// Every Event write (create or patch) the API server accepts for
		// this VA shows up on a watch.
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &eventsv1.EventList{}, client.InNamespace("default"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(w.Stop)
		var mu sync.Mutex
		eventWrites := map[watch.EventType]int{}
		go func() {
			defer GinkgoRecover()
			for e := range w.ResultChan() {
				ev, ok := e.Object.(*eventsv1.Event)
				if !ok || ev.Regarding.Name != vaName {
					continue
				}
				mu.Lock()
				eventWrites[e.Type]++
				mu.Unlock()
			}
		}()

		va := newVA(vaName, driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttachError(ctx, va.Name, "Unavailable")
		// A failure that lasts for hours, compressed: besides the backoff
		// retries, a change to the VA makes the attacher try again at once.
		for i := 0; a.driver.CallCount(fake.MethodPublish, handle) < failures; i++ {
			got, err := getVA(ctx, va.Name)
			Expect(err).NotTo(HaveOccurred())
			base := got.DeepCopy()
			got.Labels = map[string]string{"poke": fmt.Sprint(i)}
			Expect(k8sClient.Patch(ctx, got, client.MergeFrom(base))).To(Succeed())
			time.Sleep(100 * time.Millisecond)
		}
		calls := a.driver.CallCount(fake.MethodPublish, handle)
		Expect(calls).To(BeNumerically(">=", 20))

		list := func() []eventsv1.Event {
			l := &eventsv1.EventList{}
			Expect(k8sClient.List(ctx, l, client.InNamespace("default"))).To(Succeed())
			var out []eventsv1.Event
			for _, e := range l.Items {
				if e.Regarding.Name == vaName && e.Type == corev1.EventTypeWarning {
					out = append(out, e)
				}
			}
			return out
		}
		seriesOf := func(evs []eventsv1.Event) int32 {
			n := int32(0)
			for _, e := range evs {
				if e.Series != nil {
					n += e.Series.Count
				} else {
					n += max(e.DeprecatedCount, 1)
				}
			}
			return n
		}
		// client-go's events recorder marks the second occurrence as a
		// series (count 2) at once; when that patch races the create of
		// the first, it retries after its 10 s sleep. Later occurrences
		// are counted in memory only and written on its 30-minute
		// heartbeat.
		Eventually(func() int32 { return seriesOf(list()) }).
			WithTimeout(eventually).WithPolling(200*time.Millisecond).Should(BeNumerically(">=", 2), "the series shows the repetition")
		evs := list()
		series := seriesOf(evs)
		mu.Lock()
		writes := eventWrites[watch.Added] + eventWrites[watch.Modified]
		mu.Unlock()
		GinkgoWriter.Printf("%d failed publishes: %d Warning Event objects, %d Event writes, series count %d\n",
			calls, len(evs), writes, series)
		AddReportEntry("events for repeated failures", fmt.Sprintf("%d failed publishes: %d Event objects, %d Event writes, series count %d",
			calls, len(evs), writes, series))
		Expect(len(evs)).To(BeNumerically(">=", 1))
		Expect(len(evs)).To(BeNumerically("<=", 3), "Event objects for one failing VA")
		Expect(writes).To(BeNumerically("<=", 5), "Event writes for one failing VA")

		a.driver.ClearFaults()
		expectAttached(ctx, va.Name)
	})
})
