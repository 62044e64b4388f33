package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// objEvent is the current state of the VolumeAttachment or the
// PersistentVolume. obj is nil when a list found nothing; a deleted object
// comes with its last state, so that the removal of the last finalizer is
// shown too.
//
// A driver call travels the same way, in call.
type objEvent struct {
	at      time.Time // when the change arrived
	obj     client.Object
	deleted bool
	pv      bool // which object: the PV (true) or the VA
	call    *fake.Call
}

// startWatching lists and watches the two objects by name; the events are
// applied by waitFor on the main goroutine, so the output follows the order
// in which the API server reported the changes.
func (d *demo) startWatching(ctx context.Context, cfg *rest.Config) error {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return fmt.Errorf("creating the API client: %w", err)
	}
	d.c = c
	wctx, cancel := context.WithCancel(ctx)
	d.defer_(cancel)
	go d.watchLoop(wctx, vaName, false, func() client.ObjectList { return &storagev1.VolumeAttachmentList{} })
	go d.watchLoop(wctx, pvName, true, func() client.ObjectList { return &corev1.PersistentVolumeList{} })
	return nil
}

// watchLoop lists one object by name, then watches it from the list's
// resource version; it starts over whenever the watch ends.
func (d *demo) watchLoop(ctx context.Context, name string, pv bool, newList func() client.ObjectList) {
	sel := fields.OneTermEqualSelector("metadata.name", name)
	send := func(obj client.Object, deleted bool) bool {
		select {
		case d.events <- objEvent{at: time.Now(), obj: obj, deleted: deleted, pv: pv}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pause := func() bool {
		select {
		case <-time.After(200 * time.Millisecond):
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		list := newList()
		if err := d.c.List(ctx, list, client.MatchingFieldsSelector{Selector: sel}); err != nil {
			pause()
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return
		}
		var current client.Object
		if len(items) > 0 {
			current, _ = items[0].(client.Object)
		}
		if !send(current, false) {
			return
		}
		w, err := d.c.Watch(ctx, newList(), &client.ListOptions{
			FieldSelector: sel,
			Raw:           &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()},
		})
		if err != nil {
			pause()
			continue
		}
	events:
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				obj, _ := ev.Object.(client.Object)
				if !send(obj, false) {
					break events
				}
			case watch.Deleted:
				obj, _ := ev.Object.(client.Object)
				if !send(obj, true) {
					break events
				}
			case watch.Error:
				break events // list again
			}
		}
		w.Stop()
	}
}

// waitFor applies object events until cond holds. It fails with failure
// after stepTimeout, when ctx ends or when the attacher exits.
func (d *demo) waitFor(ctx context.Context, failure string, cond func() bool) error {
	timeout := time.NewTimer(stepTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case ev := <-d.events:
			d.apply(ev)
		case <-tick.C:
		case <-d.attacherDone: // nil, never ready, before the attacher starts
			return fmt.Errorf("csi-attacher exited unexpectedly (%s) while waiting: %s", testbed.ExitStatus(d.attacher.Err()), failure)
		case <-timeout.C:
			return errors.New(failure)
		case <-ctx.Done():
			return errInterrupted
		}
	}
	return nil
}
