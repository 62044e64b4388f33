//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed/cluster"
)

// The full-nodes scenario has a namespace and a StatefulSet of its own, so
// it runs before or after the main one alike.
const (
	fullNS  = "fullnodes"
	fullSTS = "full"
	// fullCount nodes answer ResourceExhausted to every publish.
	fullCount = 3
	// retryIntervalMax is the attacher's --retry-interval-max: the shipped
	// manifest leaves it at its default.
	retryIntervalMax = 30 * time.Second
	// resourceExhausted is codes.ResourceExhausted, as errorCode carries it.
	resourceExhausted = 8
)

var _ = Describe("Nodes at their attach limit", Ordered, func() {
	replicas := max(200, pods)

	BeforeAll(func(ctx SpecContext) {
		Expect(c.CreateNamespace(ctx, fullNS)).To(Succeed())
		Expect(c.CreateStatefulSetVolumes(ctx, fullNS, fullSTS, replicas)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(c.SetFullNodes(nil)).To(Succeed())
			Expect(c.Client.Delete(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: fullNS, Name: fullSTS}})).To(Succeed())
			Expect(c.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(fullNS))).To(Succeed())
			Expect(c.Client.DeleteAllOf(ctx, &corev1.PersistentVolumeClaim{}, client.InNamespace(fullNS))).To(Succeed())
			for i := range replicas {
				pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: cluster.PVName(fullNS, fullSTS, i)}}
				Expect(client.IgnoreNotFound(c.Client.Delete(ctx, pv))).To(Succeed())
			}
			Eventually(func(g Gomega) {
				s := snapshot(ctx, g)
				for i := range replicas {
					_, ok := s.VAFor(cluster.PVName(fullNS, fullSTS, i))
					g.Expect(ok).To(BeFalse(), "PV %s still has a VolumeAttachment", cluster.PVName(fullNS, fullSTS, i))
				}
				g.Expect(s.Leaks()).To(BeEmpty())
			}).WithContext(ctx).Should(Succeed())
		}, NodeTimeout(5*time.Minute))
	})

	It("attaches the other nodes' volumes as fast as without them, shows the driver's error on theirs, and attaches theirs once they have room", func(ctx SpecContext) {
		// A first rollout creates the claims, so that the two measured
		// below both find them bound.
		Expect(c.Client.Create(ctx, cluster.StatefulSet(fullNS, fullSTS, int32(replicas)))).To(Succeed())
		waitAttached(ctx, replicas, nil)
		scaleFull(ctx, 0)
		waitDetached(ctx, replicas)

		// Without full nodes.
		began := time.Now()
		scaleFull(ctx, replicas)
		waitAttached(ctx, replicas, nil)
		base := attachLatencies(ctx, replicas, began, nil)
		scaleFull(ctx, 0)
		waitDetached(ctx, replicas)

		// The same rollout with full nodes.
		full := c.NodeNames()[:fullCount]
		Expect(c.SetFullNodes(full)).To(Succeed())
		began = time.Now()
		scaleFull(ctx, replicas)
		waitAttached(ctx, replicas, full)
		others := attachLatencies(ctx, replicas, began, full)
		report("%d Pods on %d nodes, volumes attached after their VolumeAttachment's creation: p50 %s, p99 %s without full nodes; "+
			"with %d nodes answering ResourceExhausted, the other nodes' %d: p50 %s, p99 %s",
			replicas, nodes, percentile(base, 50), percentile(base, 99), fullCount, len(others), percentile(others, 50), percentile(others, 99))
		Expect(len(others)).To(BeNumerically(">", replicas/2))
		// As fast, give or take the noise of a shared machine (the
		// creation times are whole seconds).
		Expect(percentile(others, 50)).To(BeNumerically("<=", percentile(base, 50)*3/2+2*time.Second))
		Expect(percentile(others, 99)).To(BeNumerically("<=", percentile(base, 99)*3/2+2*time.Second))

		// The full nodes' VolumeAttachments show the driver's error, code
		// included.
		s := snapshot(ctx, Default)
		var stuck []string
		for i := range replicas {
			va, ok := s.VAFor(cluster.PVName(fullNS, fullSTS, i))
			Expect(ok).To(BeTrue())
			if !slices.Contains(full, va.Spec.NodeName) {
				continue
			}
			stuck = append(stuck, va.Name)
			Expect(va.Status.Attached).To(BeFalse(), "VolumeAttachment %s on full node %s", va.Name, va.Spec.NodeName)
			Expect(va.Status.AttachError).NotTo(BeNil(), "VolumeAttachment %s on full node %s", va.Name, va.Spec.NodeName)
			Expect(va.Status.AttachError.Message).To(ContainSubstring("has reached its limit of attached volumes"))
			Expect(va.Status.AttachError.ErrorCode).To(HaveValue(BeEquivalentTo(resourceExhausted)))
		}
		Expect(stuck).NotTo(BeEmpty(), "kube-scheduler placed no Pod on the full nodes %v", full)
		// The attacher never took the full nodes for a throttling driver.
		for _, name := range c.LogNames() {
			if !strings.HasPrefix(name, "csi-attacher") {
				continue
			}
			log, err := os.ReadFile(c.LogPath(name))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(log)).NotTo(ContainSubstring("fewer calls at once"), "%s lowered its bound of calls in flight", name)
		}

		// Long enough for the stuck attachments' backoff to reach
		// --retry-interval-max, then the nodes have room.
		time.Sleep(time.Until(began.Add(retryIntervalMax + 15*time.Second)))
		room := time.Now()
		Expect(c.SetFullNodes(nil)).To(Succeed())
		waitAttached(ctx, replicas, nil)
		var last time.Duration
		published := firstCalls(fake.MethodPublish, room)
		s = snapshot(ctx, Default)
		for _, name := range stuck {
			want := s.Expected[name]
			call, ok := published[want]
			Expect(ok).To(BeTrue(), "VolumeAttachment %s: no successful publish after the nodes had room", name)
			last = max(last, call.End.Sub(room))
		}
		report("the full nodes had room again: their %d volumes attached within %s (--retry-interval-max %s)", len(stuck), last.Round(100*time.Millisecond), retryIntervalMax)
		Expect(last).To(BeNumerically("<=", retryIntervalMax+5*time.Second))
	})
})

func scaleFull(ctx context.Context, replicas int) {
	GinkgoHelper()
	obj := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: fullNS, Name: fullSTS}}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas))
	Expect(c.Client.Patch(ctx, obj, patch)).To(Succeed())
}

// waitAttached waits until each of the StatefulSet's volumes has its
// VolumeAttachment, attached unless its node is one of full, which must
// show an attach error instead.
func waitAttached(ctx context.Context, replicas int, full []string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := snapshot(ctx, g)
		for i := range replicas {
			pv := cluster.PVName(fullNS, fullSTS, i)
			va, ok := s.VAFor(pv)
			g.Expect(ok).To(BeTrue(), "PV %s has no VolumeAttachment yet", pv)
			if slices.Contains(full, va.Spec.NodeName) {
				g.Expect(va.Status.AttachError).NotTo(BeNil(), "VolumeAttachment %s on full node %s", va.Name, va.Spec.NodeName)
				continue
			}
			g.Expect(s.Attached(va.Name)).To(Succeed())
		}
	}).WithContext(ctx).Should(Succeed())
}

// waitDetached waits until none of the StatefulSet's volumes has a
// VolumeAttachment or a publication left.
func waitDetached(ctx context.Context, replicas int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := snapshot(ctx, g)
		for i := range replicas {
			_, ok := s.VAFor(cluster.PVName(fullNS, fullSTS, i))
			g.Expect(ok).To(BeFalse())
		}
		g.Expect(s.Leaks()).To(BeEmpty())
	}).WithContext(ctx).Should(Succeed())
}

// attachLatencies returns, for each attached volume of the StatefulSet not
// on a full node, the time from its VolumeAttachment's creation to the end
// of its first successful publish after since.
func attachLatencies(ctx context.Context, replicas int, since time.Time, full []string) []time.Duration {
	GinkgoHelper()
	s := snapshot(ctx, Default)
	published := firstCalls(fake.MethodPublish, since)
	var out []time.Duration
	for i := range replicas {
		va, ok := s.VAFor(cluster.PVName(fullNS, fullSTS, i))
		Expect(ok).To(BeTrue())
		if slices.Contains(full, va.Spec.NodeName) {
			continue
		}
		call, ok := published[s.Expected[va.Name]]
		Expect(ok).To(BeTrue(), "VolumeAttachment %s: no successful publish", va.Name)
		out = append(out, call.End.Sub(va.CreationTimestamp.Time))
	}
	slices.Sort(out)
	return out
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, (len(sorted)*p+99)/100-1)
	return sorted[max(i, 0)].Round(100 * time.Millisecond)
}
