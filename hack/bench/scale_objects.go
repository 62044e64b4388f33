package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// startScaleDriver serves the fake driver with every existing volume
// published.
func (b *bench) startScaleDriver(s *scaleState) error {
	socket := filepath.Join(b.tmpDir, testbed.SocketName)
	cfg := fake.DefaultConfig(driverName)
	cfg.OnCall = s.onCall
	b.driver = fake.New(cfg)
	pub := s.published()
	b.driver.Restore(fake.State{Published: pub})
	for vol, nodes := range pub {
		for _, n := range nodes {
			s.pub[[2]string{vol, n}] = true
		}
	}
	return b.serveDriver(socket)
}

// createScaleObjects creates the CSINodes, the existing attachments (VA
// with finalizer and annotation, then its status; PV with its finalizer),
// the pending ones (oldest first), the new ones' PVs and the other driver's
// objects.
func (b *bench) createScaleObjects(ctx context.Context, s *scaleState) error {
	cfg := b.cfg
	began := time.Now()
	b.printf("==> creating %d CSINodes, %d attached VolumeAttachments and their PVs, %d pending, %d PVs for new ones, %d attached of %s",
		cfg.scaleNodes, cfg.scale, cfg.scalePending, cfg.scaleNew, cfg.otherObjects, otherDriverName)
	var created atomic.Int64
	step := func(name string, n int, act func(context.Context, int) error) error {
		created.Store(0)
		_, err := b.runAndWait(ctx, name, "created", n, func(ctx context.Context, i int) error {
			if err := act(ctx, i); err != nil {
				return err
			}
			created.Add(1)
			return nil
		}, func() int { return int(created.Load()) })
		return err
	}
	if err := step("csinodes", cfg.scaleNodes, func(ctx context.Context, i int) error {
		node := scaleNodeName(i)
		obj := testbed.CSINode(node,
			storagev1.CSINodeDriver{Name: driverName, NodeID: scaleNodeID(node)},
			storagev1.CSINodeDriver{Name: otherDriverName, NodeID: "other-" + scaleNodeID(node)})
		return b.call(ctx, "POST csinodes", func(ctx context.Context) error {
			_, err := b.cs.StorageV1().CSINodes().Create(ctx, obj, metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	// Attached objects of a class: PV, VA, VA status.
	attached := func(class string, n int) error {
		return step("attached "+class, n, func(ctx context.Context, i int) error {
			if err := b.createPV(ctx, s.pv(class, i)); err != nil {
				return err
			}
			va := s.attachedVA(class, i)
			if err := b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
				_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
				return err
			}); err != nil {
				return err
			}
			patch := fmt.Sprintf(`{"status":{"attached":true,"attachmentMetadata":{"devicePath":"/dev/fake/%s"}}}`,
				scaleName(scaleVolPrefix, class, i))
			return b.call(ctx, "PATCH volumeattachments/status", func(ctx context.Context) error {
				_, err := b.cs.StorageV1().VolumeAttachments().Patch(ctx, va.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
				return err
			})
		})
	}
	if err := attached(classExisting, cfg.scale); err != nil {
		return err
	}
	if err := attached(classForeign, cfg.otherObjects); err != nil {
		return err
	}
	if err := step("new PVs", cfg.scaleNew, func(ctx context.Context, i int) error {
		return b.createPV(ctx, s.pv(classNew, i))
	}); err != nil {
		return err
	}
	// Pending ones one at a time, oldest first, so that their order is
	// their creation order.
	for i := range cfg.scalePending {
		if err := b.createPV(ctx, s.pv(classPending, i)); err != nil {
			return err
		}
		if err := b.call(ctx, "POST volumeattachments", func(ctx context.Context) error {
			_, err := b.cs.StorageV1().VolumeAttachments().Create(ctx, s.va(classPending, i, true), metav1.CreateOptions{})
			return err
		}); err != nil {
			return err
		}
	}
	b.printf("    created in %.1f s", time.Since(began).Seconds())
	return nil
}

// startScaleInformers follows the watched VolumeAttachments (attach and
// delete times) and counts every modification of the other objects after
// this point: an attacher that writes to an existing attachment shows here.
func (b *bench) startScaleInformers(ctx context.Context, s *scaleState) error {
	factory := informers.NewSharedInformerFactoryWithOptions(b.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{watchLabel: "true"}).String()
		}))
	inf := factory.Storage().V1().VolumeAttachments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onVA(obj, false) },
		UpdateFunc: func(_, obj any) { s.onVA(obj, false) },
		DeleteFunc: func(obj any) { s.onVA(obj, true) },
	}); err != nil {
		return err
	}
	stop := make(chan struct{})
	factory.Start(stop)
	b.defer_(func() {
		close(stop)
		factory.Shutdown()
	})
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the informer for %v did not sync", typ)
		}
	}

	// Raw watches from the current resource version count MODIFIED events
	// of existing and foreign objects, without holding them.
	count := func(obj runtime.Object) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		switch classOf(m.GetName()) {
		case classExisting:
			s.existingModified.Add(1)
		case classForeign:
			s.foreignModified.Add(1)
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.defer_(cancel)
	vaList, err := b.cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	pvList, err := b.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	go watchModified(wctx, vaList.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return b.cs.StorageV1().VolumeAttachments().Watch(ctx, o)
	}, count)
	go watchModified(wctx, pvList.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return b.cs.CoreV1().PersistentVolumes().Watch(ctx, o)
	}, count)
	return nil
}

// watchModified calls f for every MODIFIED event from resource version rv
// on, watching again from the last version seen when the server ends a
// watch.
func watchModified(ctx context.Context, rv string, start func(context.Context, metav1.ListOptions) (watch.Interface, error), f func(runtime.Object)) {
	for ctx.Err() == nil {
		w, err := start(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		for ev := range w.ResultChan() {
			if m, ok := ev.Object.(metav1.Object); ok && ev.Type != watch.Error {
				rv = m.GetResourceVersion()
			}
			if ev.Type == watch.Modified {
				f(ev.Object)
			}
		}
		w.Stop()
	}
}
