package volumeattachment

import (
	"context"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// wakeBuffer is how many wakes may wait for their lane's queue. A wake that
// does not fit is dropped: the attachment still has its backoff.
const wakeBuffer = 1024

// wakers queue an attachment refused for a busy node again as soon as one
// of the node's calls ends, in the lane it was refused in.
type wakers struct {
	attach, detach chan event.GenericEvent
}

func newWakers() *wakers {
	return &wakers{attach: make(chan event.GenericEvent, wakeBuffer), detach: make(chan event.GenericEvent, wakeBuffer)}
}

// wake queues w without blocking: it runs when a CSI call ends.
func (k *wakers) wake(w waiter) {
	ch := k.attach
	if w.detach {
		ch = k.detach
	}
	select {
	case ch <- event.GenericEvent{Object: &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: w.name}}}:
	default:
	}
}

// source is the lane's end of its channel.
func (k *wakers) source(detach bool) source.Source {
	ch := k.attach
	if detach {
		ch = k.detach
	}
	return source.Channel[client.Object](ch, &handler.EnqueueRequestForObject{})
}

// stopChannel is the controller's Done channel that withStop kept, nil
// outside a reconcile (it never closes then).
func stopChannel(ctx context.Context) <-chan struct{} {
	g, _ := ctx.Value(stopKey{}).(gate)
	return g.stop
}
