package volumeattachment

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// TestRetryFailedOnlyWhileLeading checks that RetryFailed does nothing on a
// replica whose controller does not run (no list, nothing queued or kept),
// queues the failed attachments of the driver while it runs, and does
// nothing again once the controller has stopped.
func TestRetryFailedOnlyWhileLeading(t *testing.T) {
	g := NewWithT(t)
	const driver = "back.csi.test"
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	failure := &storagev1.VolumeError{Message: "rpc error: code = Unavailable desc = gone"}
	var objs []client.Object
	for i, st := range []storagev1.VolumeAttachmentStatus{
		{AttachError: failure}, {DetachError: failure}, {Attached: true}, {AttachError: failure},
	} {
		attacher := driver
		if i == 3 {
			attacher = "other.csi.test"
		}
		objs = append(objs, &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("va-%d", i)},
			Spec:       storagev1.VolumeAttachmentSpec{Attacher: attacher, NodeName: "n"},
			Status:     st,
		})
	}
	var lists atomic.Int32
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, opts ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, l, opts...)
		}}).Build()
	r := &Reconciler{Client: c, DriverName: driver}
	ctx := t.Context()

	for range 10 {
		r.RetryFailed(ctx)
	}
	g.Expect(lists.Load()).To(BeZero(), "a replica that does not lead lists nothing")

	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	running, stop := context.WithCancel(ctx)
	g.Expect(r.retries.Start(running, q)).To(Succeed())
	r.RetryFailed(ctx)
	r.RetryFailed(ctx)
	g.Expect(q.Len()).To(Equal(2), "the two failed attachments of the driver, each once")
	var names []string
	for q.Len() > 0 {
		req, _ := q.Get()
		names = append(names, req.Name)
		q.Done(req)
	}
	g.Expect(names).To(ConsistOf("va-0", "va-1"))

	stop()
	g.Eventually(r.retries.get).Should(BeNil(), "the queue is let go when the controller stops")
	calls := lists.Load()
	r.RetryFailed(ctx)
	g.Expect(lists.Load()).To(Equal(calls))
	g.Expect(q.Len()).To(BeZero())
}
