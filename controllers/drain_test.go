package controllers_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// laggingWatches returns the suite's rest config with every watch of
// resource delivered late: each chunk of the watch stream is held for lag
// after it arrives. The attacher's cache then trails its own writes by
// about lag, as a busy API server makes it do.
func laggingWatches(resource string, lag time.Duration) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err != nil || req.URL.Query().Get("watch") != "true" || !strings.HasSuffix(req.URL.Path, "/"+resource) {
				return resp, err
			}
			resp.Body = &laggingBody{ReadCloser: resp.Body, lag: lag}
			return resp, nil
		})
	})
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type laggingBody struct {
	io.ReadCloser
	lag time.Duration
}

func (b *laggingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	time.Sleep(b.lag)
	return n, err
}

var _ = Describe("Detach during a drain", func() {
	const driverName = "drain.csi.test"
	objs := specObjects()

	It("calls ControllerUnpublish once when PV and CSINode events queue the VolumeAttachment during the detach", func() {
		ctx := context.Background()
		// The cache sees VolumeAttachment changes 300 ms late, so the
		// reconciles queued meanwhile read the copy from before the
		// finalizer was removed.
		a := startAttacher(fake.DefaultConfig(driverName), attacherOptions{
			restConfig: laggingWatches("volumeattachments", 300*time.Millisecond), timeout: 10 * time.Second,
		})
		DeferCleanup(a.stop)
		node := uniqueName("dr-node")
		csiNode := newCSINode(node, driverName, "id-"+node)
		objs.create(ctx, csiNode)
		pv := newPV(uniqueName("dr-pv"), driverName, uniqueName("dr-vol"))
		objs.create(ctx, pv)
		va := newVA(uniqueName("dr-va"), driverName, node, pv.Name)
		objs.create(ctx, va)
		expectAttached(ctx, va.Name)
		handle := pv.Spec.CSI.VolumeHandle

		a.driver.SetLatency(fake.MethodUnpublish, handle, 2*time.Second)
		Expect(k8sClient.Delete(ctx, va)).To(Succeed())
		Eventually(func() int { return a.driver.CallCount(fake.MethodUnpublish, handle) }).
			WithTimeout(eventually).WithPolling(10 * time.Millisecond).Should(Equal(1))

		By("changing the PV and the CSINode while ControllerUnpublish is blocked")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), pv)).To(Succeed())
		base := pv.DeepCopy()
		pv.Spec.MountOptions = []string{"noatime"}
		Expect(k8sClient.Patch(ctx, pv, client.MergeFrom(base))).To(Succeed())
		// The node plugin registering again: the CSINode is recreated.
		Expect(k8sClient.Delete(ctx, csiNode)).To(Succeed())
		expectGone(ctx, csiNode)
		objs.create(ctx, newCSINode(node, driverName, "id-"+node))

		expectGone(ctx, va)
		Consistently(func() int { return a.driver.CallCount(fake.MethodUnpublish, handle) }).
			WithTimeout(consistentFor).WithPolling(pollInterval).Should(Equal(1), "exactly one ControllerUnpublish")
		Expect(a.driver.Published(handle)).To(BeEmpty())
	})
})
