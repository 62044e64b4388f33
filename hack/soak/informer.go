package main

import (
	"context"
	"errors"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

func (s *soak) startInformer(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(s.cs, 0)
	inf := factory.Storage().V1().VolumeAttachments().Informer()
	update := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		va, ok := obj.(*storagev1.VolumeAttachment)
		if !ok {
			return
		}
		s.mu.Lock()
		if deleted {
			delete(s.vas, va.Name)
		} else {
			s.vas[va.Name] = va
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { update(o, false) },
		UpdateFunc: func(_, o any) { update(o, false) },
		DeleteFunc: func(o any) { update(o, true) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return errors.New("the VolumeAttachment informer did not sync")
	}
	return nil
}

// waitFor waits until cond holds for the informer's copy of VA name (nil
// when there is none), or until ctx ends or timeout passes.
func (s *soak) waitFor(ctx context.Context, name string, timeout time.Duration, cond func(*storagev1.VolumeAttachment) bool) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.vas[name])
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
