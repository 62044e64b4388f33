package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// attachWatcher polls the VolumeAttachments of one driver and remembers
// when each was first seen attached: a ControllerPublishVolume that starts
// after that moment repeats a publish for a VA already marked attached.
type attachWatcher struct {
	mu    sync.Mutex
	first map[string]time.Time // VA name -> first seen attached
}

func watchAttached(ctx context.Context, driverName string) *attachWatcher {
	w := &attachWatcher{first: map[string]time.Time{}}
	go func() {
		defer GinkgoRecover()
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for {
			list := &storagev1.VolumeAttachmentList{}
			// The time is taken after the answer arrived: the VA was
			// attached no later than that, so a publish that starts after
			// it certainly repeats one for an attached VA.
			if err := k8sClient.List(ctx, list); err == nil {
				now := time.Now()
				w.mu.Lock()
				for _, va := range list.Items {
					if va.Spec.Attacher != driverName || !va.Status.Attached {
						continue
					}
					if _, ok := w.first[va.Name]; !ok {
						w.first[va.Name] = now
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *attachWatcher) seen(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.first[name]
	return t, ok
}

var _ = Describe("Attacher restart mid-work", func() {
	It("converges after the Manager is stopped with 200 attaches and 100 detaches in flight, without leaks or repeated publishes", func() {
		const (
			driverName = "restart.csi.test"
			attaches   = 200
			detaches   = 100
			latency    = 300 * time.Millisecond
			converge   = 90 * time.Second
		)
		ctx := context.Background()
		objs := &tracker{}
		finalizer := volume.FinalizerName(driverName)

		// The driver outlives both attachers, as a CSI driver container
		// outlives a restarted attacher sidecar.
		dir, err := os.MkdirTemp("", "csi-restart")
		Expect(err).NotTo(HaveOccurred())
		driver := fake.New(fake.DefaultConfig(driverName))
		Expect(driver.Start(filepath.Join(dir, "csi.sock"))).To(Succeed())
		DeferCleanup(func() { driver.Stop(); _ = os.RemoveAll(dir) })
		DeferCleanup(objs.cleanup, ctx)
		driver.SetLatency(fake.MethodPublish, "", latency)
		driver.SetLatency(fake.MethodUnpublish, "", latency)

		first := startAttacher(fake.DefaultConfig(driverName), attacherOptions{driver: driver, workers: 10})
		DeferCleanup(first.stop) // harmless after the manual stop below

		node := uniqueName("restart-node")
		nodeID := "id-" + node
		objs.create(ctx, newCSINode(node, driverName, nodeID))

		watchCtx, stopWatch := context.WithCancel(ctx)
		DeferCleanup(stopWatch)
		watcher := watchAttached(watchCtx, driverName)

		newPair := func() (*corev1.PersistentVolume, *storagev1.VolumeAttachment) {
			pv := newPV(uniqueName("restart-pv"), driverName, uniqueName("restart-vol"))
			objs.create(ctx, pv)
			return pv, newVA(uniqueName("restart-va"), driverName, node, pv.Name)
		}

		// 100 attachments that will be detached while the attacher stops.
		var oldPVs []*corev1.PersistentVolume
		var oldVAs []*storagev1.VolumeAttachment
		for i := 0; i < detaches; i++ {
			pv, va := newPair()
			objs.create(ctx, va)
			oldPVs, oldVAs = append(oldPVs, pv), append(oldVAs, va)
		}
		Eventually(func(g Gomega) {
			for _, va := range oldVAs {
				got, err := getVA(ctx, va.Name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Status.Attached).To(BeTrue(), va.Name)
			}
		}).WithTimeout(converge).WithPolling(200 * time.Millisecond).Should(Succeed())

		// PVs first, so the burst below is only VolumeAttachment work.
		var newPVs []*corev1.PersistentVolume
		var newVAs []*storagev1.VolumeAttachment
		for i := 0; i < attaches; i++ {
			pv, va := newPair()
			newPVs, newVAs = append(newPVs, pv), append(newVAs, va)
		}
		driver.ResetCalls()
		// The burst is sent by several writers at once, so that all of it
		// is queued well before the attacher can finish it.
		var wg sync.WaitGroup
		jobs := make(chan func() error)
		for w := 0; w < 8; w++ {
			wg.Go(func() {
				defer GinkgoRecover()
				for job := range jobs {
					Expect(job()).To(Succeed())
				}
			})
		}
		for i := range newVAs {
			jobs <- func() error { return k8sClient.Create(ctx, newVAs[i]) }
			if i%2 == 1 {
				jobs <- func() error { return k8sClient.Delete(ctx, oldVAs[i/2]) }
			}
		}
		close(jobs)
		wg.Wait()
		for _, va := range newVAs {
			objs.objs = append(objs.objs, va)
		}
		// Let the work start, then stop the Manager in the middle of it.
		Eventually(func(g Gomega) {
			g.Expect(driver.CallCount(fake.MethodPublish, "")).To(BeNumerically(">=", 20))
			g.Expect(driver.CallCount(fake.MethodUnpublish, "")).To(BeNumerically(">=", 20))
		}).WithTimeout(eventually).WithPolling(10 * time.Millisecond).Should(Succeed())
		first.cancel()
		Eventually(first.done).WithTimeout(time.Minute).Should(BeClosed())
		_ = first.client.Close()

		attachedAtStop, goneAtStop := 0, 0
		for _, va := range newVAs {
			if got, err := getVA(ctx, va.Name); err == nil && got.Status.Attached {
				attachedAtStop++
			}
		}
		for _, va := range oldVAs {
			if _, err := getVA(ctx, va.Name); apierrors.IsNotFound(err) {
				goneAtStop++
			}
		}
		GinkgoWriter.Printf("at stop: %d/%d attached, %d/%d detached\n", attachedAtStop, attaches, goneAtStop, detaches)
		Expect(attachedAtStop).To(BeNumerically("<", attaches), "the stop must interrupt attaches")
		Expect(goneAtStop).To(BeNumerically("<", detaches), "the stop must interrupt detaches")

		second := startAttacher(fake.DefaultConfig(driverName), attacherOptions{driver: driver, workers: 10})
		DeferCleanup(second.stop)

		Eventually(func(g Gomega) {
			list := &storagev1.VolumeAttachmentList{}
			g.Expect(k8sClient.List(ctx, list)).To(Succeed())
			byName := map[string]storagev1.VolumeAttachment{}
			for _, va := range list.Items {
				byName[va.Name] = va
			}
			for _, va := range newVAs {
				got, ok := byName[va.Name]
				g.Expect(ok).To(BeTrue(), va.Name)
				g.Expect(got.Status.Attached).To(BeTrue(), va.Name)
			}
			for _, va := range oldVAs {
				g.Expect(byName).NotTo(HaveKey(va.Name))
			}
		}).WithTimeout(converge).WithPolling(200 * time.Millisecond).Should(Succeed())

		// Every live attachment carries our finalizer, has no error, and so
		// does its PV.
		handles := map[string]string{} // volume handle -> VA name
		for i, va := range newVAs {
			got, err := getVA(ctx, va.Name)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Finalizers).To(ContainElement(finalizer), "attached VA %s without our finalizer", va.Name)
			Expect(got.Status.AttachError).To(BeNil(), va.Name)
			pv, err := getPV(ctx, newPVs[i].Name)
			Expect(err).NotTo(HaveOccurred())
			Expect(pv.Finalizers).To(ContainElement(finalizer), pv.Name)
			handles[newPVs[i].Spec.CSI.VolumeHandle] = va.Name
		}

		// The driver holds exactly the live publications.
		Eventually(driver.Publications).WithTimeout(eventually).WithPolling(pollInterval).Should(HaveLen(attaches))
		pubs := driver.Publications()
		for h, nodes := range pubs {
			Expect(handles).To(HaveKey(h), "leaked publication of %s", h)
			Expect(nodes).To(Equal([]string{nodeID}), h)
		}
		for _, pv := range oldPVs {
			Expect(pubs).NotTo(HaveKey(pv.Spec.CSI.VolumeHandle), "publication leaked for detached %s", pv.Name)
		}

		// No ControllerPublishVolume for a volume once its VA was seen
		// attached, and each volume published successfully once (more
		// than one only when the stop cut the first answer off).
		stopWatch()
		repeats, extra := 0, 0
		for h, vaName := range handles {
			seen, ok := watcher.seen(vaName)
			Expect(ok).To(BeTrue(), "the watcher saw %s attached", vaName)
			calls := callsFor(driver, fake.MethodPublish, h)
			Expect(calls).NotTo(BeEmpty(), h)
			sort.Slice(calls, func(i, j int) bool { return calls[i].Start.Before(calls[j].Start) })
			for _, c := range calls {
				Expect(c.Start.Before(seen)).To(BeTrue(),
					"ControllerPublishVolume for %s at %v after its VA %s was seen attached at %v", h, c.Start, vaName, seen)
			}
			if len(calls) > 1 {
				repeats++
				extra += len(calls) - 1
				for _, c := range calls[:len(calls)-1] {
					// An earlier call can only be one the stop interrupted.
					Expect(c.Code).To(BeElementOf(codes.OK, codes.Canceled, codes.DeadlineExceeded), h)
				}
			}
			Expect(len(calls)).To(BeNumerically("<=", 2), "publish calls for %s", h)
		}
		AddReportEntry("restart mid-work", map[string]int{
			"attached at stop": attachedAtStop, "detached at stop": goneAtStop,
			"volumes published twice": repeats,
		})
		GinkgoWriter.Printf("volumes published more than once (interrupted by the stop): %d\n", repeats)
	})
})
