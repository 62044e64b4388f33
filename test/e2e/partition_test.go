//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/testbed/cluster"
	"github.com/csi-attacher/csi-attacher/test/e2e/proxy"
)

// The partitioned-leader scenarios run in namespaces and a StatefulSet of
// their own, so they do not depend on the order of the suite's containers.
const (
	partSTS = "part"
	// partCallLatency is the backend's time per call: several seconds, so
	// calls are in flight when the partition strikes.
	partCallLatency = 4 * time.Second
	// partCut is how long the leader's API traffic is dropped: longer than
	// the lease (15 s), so the standby takes over.
	partCut = 25 * time.Second
	// partTimeout is --timeout for both replicas: the bound of a call, for
	// which the new leader holds the attachments the old one may still be
	// calling the driver for. Shorter than the default minute to keep the
	// scenario short; it still covers partCallLatency.
	partTimeout = 20 * time.Second
	// fenceDelay is 1.5 × the default retry period (leader.FenceDelay).
	fenceDelay = 7500 * time.Millisecond
)

var _ = Describe("A leader cut off from the API server", Ordered, func() {
	// Two ways to lose the API server: a partition, where requests hang,
	// and connections reset at once, where they fail fast and a leader
	// that does not stop would retry its calls over and over.
	for _, cut := range []struct {
		name  string
		start func(*proxy.Proxy)
	}{{"blackholed", (*proxy.Proxy).Blackhole}, {"dropped", (*proxy.Proxy).Drop}} {
		It("stops calling the driver when its traffic is "+cut.name+", and the standby takes over without a call overlapping one of the old leader's", func(ctx SpecContext) {
			partitionScenario(ctx, "e2e-partition-"+cut.name, cut.start)
		})
	}
})

// partitionScenario runs the scenario in namespace ns, cutting the leader's
// traffic with start.
func partitionScenario(ctx SpecContext, ns string, start func(*proxy.Proxy)) {
	// Cleanups run last first: the scenario's objects go while its
	// standby still leads, then the driver and a single replica with
	// the manifest's flags come back for the rest of the suite.
	DeferCleanup(func(ctx SpecContext) {
		for _, a := range c.Attachers() {
			a.Stop()
		}
		_, err := c.StartAttacher(ctx)
		Expect(err).NotTo(HaveOccurred())
	})
	prev := c.Options
	DeferCleanup(func() {
		c.PublishLatency, c.UnpublishLatency, c.FinishAbandoned = prev.PublishLatency, prev.UnpublishLatency, prev.FinishAbandoned
		Expect(c.RestartDriver()).To(Succeed())
	})
	DeferCleanup(deletePartition, ns)
	Expect(c.CreateNamespace(ctx, ns)).To(Succeed())
	Expect(c.CreateStatefulSetVolumes(ctx, ns, partSTS, pods)).To(Succeed())

	// A backend that takes seconds per call and finishes a call even
	// when its caller goes away.
	c.PublishLatency, c.UnpublishLatency, c.FinishAbandoned = partCallLatency, partCallLatency, true
	Expect(c.RestartDriver()).To(Succeed())

	// Two replicas: the leader reaches the API server through a proxy,
	// the standby directly.
	for _, a := range c.Attachers() {
		a.Stop()
	}
	api, err := c.APIServerAddr()
	Expect(err).NotTo(HaveOccurred())
	apiProxy, err := proxy.New(api)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(apiProxy.Close)
	viaProxy, err := c.KubeconfigVia("csi-attacher", apiProxy.Addr())
	Expect(err).NotTo(HaveOccurred())
	// Two calls per node at a time: the rollout comes in waves, so the
	// leader still has calls to start when it is cut off.
	args := []string{"--timeout=" + partTimeout.String(), "--max-inflight-per-node=2"}
	old, err := c.StartAttacherWith(ctx, cluster.AttacherOptions{Kubeconfig: viaProxy, Args: args})
	Expect(err).NotTo(HaveOccurred())
	Expect(leaderOf(ctx)).To(Equal(old))
	oldID := leaseHolder(ctx, Default)
	standby, err := c.StartAttacherWith(ctx, cluster.AttacherOptions{Args: args})
	Expect(err).NotTo(HaveOccurred())

	began := time.Now()
	Expect(c.Client.Create(ctx, cluster.StatefulSet(ns, partSTS, int32(pods)))).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(partAttached(ctx, g, ns)).To(BeNumerically(">=", pods*3/10))
	}).WithContext(ctx).WithPolling(20 * time.Millisecond).Should(Succeed())
	// The old leader loses its Lease and exits, as it should.
	old.Exits()
	cut := time.Now()
	attachedAtCut := partAttached(ctx, Default, ns)
	start(apiProxy)
	report("%s: the leader's API traffic cut for %s with %d of %d volumes attached", ns, partCut, attachedAtCut, pods)

	var acquired time.Time
	Eventually(func(g Gomega) {
		lease := &coordinationv1.Lease{}
		g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: cluster.AttacherNamespace, Name: leader.LeaseName(c.Driver)}, lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		g.Expect(*lease.Spec.HolderIdentity).NotTo(BeElementOf(oldID, ""))
		acquired = lease.Spec.AcquireTime.Time
	}).WithContext(ctx).WithTimeout(partCut).Should(Succeed(), "the standby takes over while the leader is cut off")
	report("%s: the standby took the Lease %s after the cut (lease 15 s)", ns, acquired.Sub(cut).Round(100*time.Millisecond))
	// The old leader renewed at most a retry period before the cut; the
	// standby saw that renewal and takes over one lease duration later.
	Expect(acquired.Sub(cut)).To(BeNumerically("<=", 17*time.Second), "no later than a lease duration after the last renewal")

	time.Sleep(time.Until(cut.Add(partCut)))
	apiProxy.Restore()
	Eventually(old.Done()).WithTimeout(time.Minute).Should(BeClosed(), "the old leader exits once it has lost the Lease")

	partRollout(ctx, ns)
	report("%s: every volume attached %s after the StatefulSet was created", ns, since(began))
	Expect(leaderOf(ctx)).To(Equal(standby))

	all := append(calls(fake.MethodPublish, began), calls(fake.MethodUnpublish, began)...)
	var lastOld time.Time
	afterCut := 0
	for _, call := range all {
		if call.Caller != old.Pid() {
			continue
		}
		if call.Start.After(lastOld) {
			lastOld = call.Start
		}
		if call.Start.After(cut) {
			afterCut++
		}
	}
	Expect(lastOld).NotTo(BeZero(), "the old leader called the driver before the cut")
	report("%s: the old leader started %d calls after the cut, the last %s after it", ns, afterCut, lastOld.Sub(cut).Round(10*time.Millisecond))
	Expect(lastOld).To(BeTemporally("<", acquired), "the old leader starts no call after the standby acquired the Lease")
	Expect(lastOld).To(BeTemporally("<=", cut.Add(fenceDelay+time.Second)), "nor once its renewal was overdue")
	Expect(overlappingCalls(all)).To(BeEmpty(), "no two calls for one volume in flight at once")

	// Scale-down: nothing stays published.
	scaleDown := time.Now()
	partScale(ctx, ns, 0)
	Eventually(func(g Gomega) {
		s := snapshot(ctx, g)
		for vol := range s.Published {
			g.Expect(vol).NotTo(HavePrefix("vol-"+partSTS+"-"), "volume %s is still published", vol)
		}
		for name, va := range s.VAs {
			g.Expect(partVA(ns, va.Spec.Source.PersistentVolumeName)).To(BeFalse(), "VolumeAttachment %s is left", name)
		}
	}).WithContext(ctx).Should(Succeed())
	report("%s: every volume detached %s after the scale-down", ns, since(scaleDown))
	all = append(calls(fake.MethodPublish, began), calls(fake.MethodUnpublish, began)...)
	Expect(overlappingCalls(all)).To(BeEmpty(), "no two calls for one volume in flight at once")
}

// leaseHolder returns the holder of the attacher's Lease.
func leaseHolder(ctx context.Context, g Gomega) string {
	lease := &coordinationv1.Lease{}
	g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: cluster.AttacherNamespace, Name: leader.LeaseName(c.Driver)}, lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
	return *lease.Spec.HolderIdentity
}

// partVA tells whether a VolumeAttachment's PV belongs to the scenario in ns.
func partVA(ns string, pv *string) bool {
	return pv != nil && strings.HasPrefix(*pv, "pv-"+ns+"-"+partSTS+"-")
}

// partAttached counts the scenario's attached VolumeAttachments.
func partAttached(ctx context.Context, g Gomega, ns string) int {
	n := 0
	for _, va := range snapshot(ctx, g).VAs {
		if partVA(ns, va.Spec.Source.PersistentVolumeName) && va.Status.Attached {
			n++
		}
	}
	return n
}

// partRollout waits until every Pod of the scenario runs with its volume
// attached, and the driver holds nothing else of it.
func partRollout(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		running, err := c.ListPods(ctx, ns, map[string]string{"app": partSTS})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(running).To(HaveLen(pods))
		s := snapshot(ctx, g)
		for _, pod := range running {
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "Pod %s", pod.Name)
		}
		n := 0
		for name, va := range s.VAs {
			if !partVA(ns, va.Spec.Source.PersistentVolumeName) {
				continue
			}
			n++
			g.Expect(s.Attached(name)).To(Succeed())
		}
		g.Expect(n).To(Equal(pods))
		g.Expect(s.Leaks()).To(BeEmpty())
	}).WithContext(ctx).Should(Succeed())
}

func partScale(ctx context.Context, ns string, replicas int) {
	GinkgoHelper()
	obj := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: partSTS}}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas))
	Expect(c.Client.Patch(ctx, obj, patch)).To(Succeed())
}

// overlappingCalls returns, for each volume, the calls that were in flight
// at the same time as another call for it: by the driver's records, from
// the moment each call arrived to the moment the backend was done with it.
func overlappingCalls(all []fake.CallRecord) []string {
	byVolume := map[string][]fake.CallRecord{}
	for _, call := range all {
		byVolume[call.VolumeID] = append(byVolume[call.VolumeID], call)
	}
	var out []string
	for vol, cs := range byVolume {
		slices.SortFunc(cs, func(a, b fake.CallRecord) int { return a.Start.Compare(b.Start) })
		for i := 1; i < len(cs); i++ {
			prev, next := cs[i-1], cs[i]
			if prev.End.IsZero() || next.Start.Before(prev.End) {
				out = append(out, fmt.Sprintf("%s: %s by pid %d [%s, %s] and %s by pid %d from %s", vol,
					prev.Method, prev.Caller, prev.Start.Format("15:04:05.000"), prev.End.Format("15:04:05.000"),
					next.Method, next.Caller, next.Start.Format("15:04:05.000")))
			}
		}
	}
	slices.Sort(out)
	return out
}

// deletePartition removes the objects of the scenario in ns and waits until the
// attacher has released its PVs.
func deletePartition(ctx SpecContext, ns string) {
	Expect(client.IgnoreNotFound(c.Client.Delete(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: partSTS}}))).To(Succeed())
	Expect(c.Client.DeleteAllOf(ctx, &corev1.PersistentVolumeClaim{}, client.InNamespace(ns))).To(Succeed())
	for i := range pods {
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: cluster.PVName(ns, partSTS, i)}}
		Expect(client.IgnoreNotFound(c.Client.Delete(ctx, pv))).To(Succeed())
	}
	Eventually(func(g Gomega) {
		var left corev1.PersistentVolumeList
		g.Expect(c.Client.List(ctx, &left)).To(Succeed())
		for _, pv := range left.Items {
			g.Expect(strings.HasPrefix(pv.Name, "pv-"+ns+"-")).To(BeFalse(), "PV %s is left", pv.Name)
		}
	}).WithContext(ctx).Should(Succeed())
}
