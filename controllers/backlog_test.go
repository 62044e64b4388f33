package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// A new leader finds the attachments its predecessor left pending only in
// its initial list. controller-runtime's priority queue gives that list a
// low priority, so with the default handler the backlog waited behind
// every attachment created after the takeover, for as long as a rollout
// kept them coming.
var _ = Describe("A backlog found at takeover", func() {
	It("is served before the attachments created after it, however fast they arrive", func() {
		const (
			driverName = "backlog.csi.test"
			backlog    = 2000
			// The backend takes publishLatency per call and the attacher
			// runs workers calls at once: at most 100 attaches per second.
			// The rollout creates arrivalRate per second, half of that,
			// from before the takeover until arrivalFor after it: a backlog
			// served only when no new work is ready gets the other half.
			workers        = 10
			publishLatency = 100 * time.Millisecond
			arrivalRate    = 50
			arrivalFor     = 20 * time.Second
			creators       = 8
		)
		ctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		run := uniqueName("backlog")
		labels := map[string]string{"backlog-test": run}
		DeferCleanup(deleteLabelledAttachments, context.Background(), labels)

		node := uniqueName("backlog-node")
		csiNode := newCSINode(node, driverName, "id-"+node)
		Expect(k8sClient.Create(ctx, csiNode)).To(Succeed())
		DeferCleanup(k8sClient.Delete, context.Background(), csiNode)

		created := newInstants()
		attached := newInstants()
		recordAttached(ctx, labels, attached)

		create := func(prefix string) {
			defer GinkgoRecover()
			name := uniqueName(prefix)
			va := inlineAttachment(name, driverName, node, labels)
			created.set(name, time.Now())
			Expect(k8sClient.Create(ctx, va)).To(Succeed())
		}

		By(fmt.Sprintf("creating %d VolumeAttachments while no attacher runs", backlog))
		setupStart := time.Now()
		names := make(chan struct{})
		var wg sync.WaitGroup
		for range creators {
			wg.Go(func() {
				for range names {
					create("backlog-old")
				}
			})
		}
		for range backlog {
			names <- struct{}{}
		}
		close(names)
		wg.Wait()
		backlogNames := created.names()

		By("creating new ones at a steady rate, then starting the attacher")
		setupTook := time.Since(setupStart)
		stopArrivals := make(chan struct{})
		arrivalsStart := time.Now()
		arrivalsDone := make(chan struct{})
		go func() {
			defer close(arrivalsDone)
			var wg sync.WaitGroup
			defer wg.Wait()
			tick := time.NewTicker(time.Second / arrivalRate)
			defer tick.Stop()
			slots := make(chan struct{}, creators)
			for {
				select {
				case <-stopArrivals:
					return
				case <-tick.C:
				}
				select {
				case slots <- struct{}{}:
				default:
					continue // the API server is behind: skip a beat
				}
				wg.Go(func() {
					defer func() { <-slots }()
					create("backlog-new")
				})
			}
		}()
		time.Sleep(time.Second) // the rollout is under way at the takeover

		dir, err := os.MkdirTemp("", "csi-backlog")
		Expect(err).NotTo(HaveOccurred())
		driver := fake.New(fake.DefaultConfig(driverName))
		Expect(driver.Start(filepath.Join(dir, "csi.sock"))).To(Succeed())
		DeferCleanup(os.RemoveAll, dir)
		DeferCleanup(driver.Stop)
		driver.SetLatency(fake.MethodPublish, "", publishLatency)
		takeover := time.Now()
		startOwnAttacher(driverName, attacherOptions{driver: driver, workers: workers, timeout: 10 * time.Second})

		time.Sleep(arrivalFor)
		close(stopArrivals)
		<-arrivalsDone
		arrivalsFor := time.Since(arrivalsStart)
		all := created.names()
		By("waiting for the backlog")
		Eventually(func() int { return attached.count(backlogNames) }).
			WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(backlog))
		By(fmt.Sprintf("waiting for the %d created after it", len(all)-backlog))
		Eventually(func() int { return attached.count(all) }).
			WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(len(all)))

		// Served = the start of the volume's first ControllerPublishVolume.
		served := map[string]time.Time{}
		for _, c := range driver.Calls() {
			if c.Method != fake.MethodPublish {
				continue
			}
			if t, ok := served[c.VolumeID]; !ok || c.Start.Before(t) {
				served[c.VolumeID] = c.Start
			}
		}
		var firstServed, lastBacklog time.Time
		for _, t := range served {
			if firstServed.IsZero() || t.Before(firstServed) {
				firstServed = t
			}
		}
		for _, name := range backlogNames {
			lastBacklog = latest(lastBacklog, served[name])
		}
		// The first publish starts once the controller has queued its whole
		// initial list: whatever was created after that came as a watch
		// event, after the backlog.
		var late, overtook int
		var backlogWait, backlogSinceTakeover, newWait []time.Duration
		for _, name := range backlogNames {
			backlogWait = append(backlogWait, attached.get(name).Sub(created.get(name)))
			backlogSinceTakeover = append(backlogSinceTakeover, attached.get(name).Sub(takeover))
		}
		for _, name := range all[backlog:] {
			newWait = append(newWait, attached.get(name).Sub(created.get(name)))
			if created.get(name).After(firstServed) {
				late++
				if served[name].Before(lastBacklog) {
					overtook++
				}
			}
		}
		report := fmt.Sprintf("backlog of %d (created in %.1f s before the takeover): last attached %.1f s after the takeover, wait from creation p50 %.1f s, max %.1f s; "+
			"%d created after it (%.0f/s for %.0f s): wait from creation p50 %.1f s, max %.1f s; "+
			"%d of the %d created after the first publish (%.1f s after the takeover) were published before the backlog's last",
			backlog, setupTook.Seconds(), percentile(backlogSinceTakeover, 100), percentile(backlogWait, 50), percentile(backlogWait, 100),
			len(all)-backlog, float64(len(all)-backlog)/arrivalsFor.Seconds(), arrivalsFor.Seconds(), percentile(newWait, 50), percentile(newWait, 100),
			overtook, late, firstServed.Sub(takeover).Seconds())
		GinkgoWriter.Println(report)
		AddReportEntry("backlog at takeover", report)

		Expect(late).To(BeNumerically(">", arrivalRate), "the rollout went on after the first publish")
		// Up to the workers' number of reconciles run at once: a backlog
		// item taken just before an arrival may reach its publish after it.
		Expect(overtook).To(BeNumerically("<=", workers),
			"attachments created after the takeover were served before the backlog")
	})
})

// instants records one instant per name, safe for concurrent use.
type instants struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string
}

func newInstants() *instants { return &instants{at: map[string]time.Time{}} }

// set records t for name unless name already has one.
func (t *instants) set(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.at[name]; !ok {
		t.at[name] = at
		t.order = append(t.order, name)
	}
}

func (t *instants) get(name string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.at[name]
}

// names lists the names in the order they were recorded.
func (t *instants) names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.order)
}

// count is how many of names have an instant.
func (t *instants) count(names []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, name := range names {
		if _, ok := t.at[name]; ok {
			n++
		}
	}
	return n
}

// recordAttached records when each labelled VolumeAttachment is first seen
// attached, until ctx ends; a watch the server closes is opened again from
// where it stopped.
func recordAttached(ctx context.Context, labels map[string]string, attached *instants) {
	GinkgoHelper()
	ctx, stop := context.WithCancel(ctx)
	DeferCleanup(stop)
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	open := func(rv string) (watch.Interface, error) {
		return wc.Watch(ctx, &storagev1.VolumeAttachmentList{}, client.MatchingLabels(labels),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	w, err := open("")
	Expect(err).NotTo(HaveOccurred())
	go func() {
		rv := ""
		for {
			for ev := range w.ResultChan() {
				if va, ok := ev.Object.(*storagev1.VolumeAttachment); ok {
					rv = va.ResourceVersion
					if va.Status.Attached {
						attached.set(va.Name, time.Now())
					}
				}
			}
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = open(rv); err != nil {
				return
			}
		}
	}()
}

// inlineAttachment is a VolumeAttachment of an inline CSI volume named after it: one
// object per attachment, no PersistentVolume to create or to patch.
func inlineAttachment(name, driver, node string, labels map[string]string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: driver,
			NodeName: node,
			Source: storagev1.VolumeAttachmentSource{InlineVolumeSpec: &corev1.PersistentVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
					Driver: driver, VolumeHandle: name,
				}},
			}},
		},
	}
}

// deleteLabelledAttachments removes every VolumeAttachment with labels: finalizers
// stripped (several at once), then one delete of the collection.
func deleteLabelledAttachments(ctx context.Context, labels map[string]string) {
	list := &storagev1.VolumeAttachmentList{}
	Expect(k8sClient.List(ctx, list, client.MatchingLabels(labels))).To(Succeed())
	work := make(chan *storagev1.VolumeAttachment)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for va := range work {
				_ = k8sClient.Patch(ctx, va, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
			}
		})
	}
	for i := range list.Items {
		if len(list.Items[i].Finalizers) > 0 {
			work <- &list.Items[i]
		}
	}
	close(work)
	wg.Wait()
	Expect(k8sClient.DeleteAllOf(ctx, &storagev1.VolumeAttachment{}, client.MatchingLabels(labels))).To(Succeed())
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// percentile is the p-th percentile of ds in seconds (100 = the largest).
func percentile(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Seconds()
}
