//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed/cluster"
)

const (
	ns  = "e2e"
	sts = "web"
)

var stsLabels = map[string]string{"app": sts}

var _ = Describe("Pods placed by kube-scheduler, volumes attached by kube-controller-manager and the attacher", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		// The driver's record outlives the other containers, which run in
		// any order; some repeat publishes on purpose (a partitioned
		// leader's calls that finish after it went away).
		publishBaseline = snapshot(ctx, Default).Driver.RepeatedPublishes
		Expect(c.CreateNamespace(ctx, ns)).To(Succeed())
		Expect(c.CreateStatefulSetVolumes(ctx, ns, sts, pods)).To(Succeed())
	})

	It("attaches every volume of a StatefulSet that comes up", func(ctx SpecContext) {
		began := time.Now()
		Expect(c.Client.Create(ctx, cluster.StatefulSet(ns, sts, int32(pods)))).To(Succeed())
		waitRollout(ctx, pods)
		report("StatefulSet of %d Pods on %d nodes: every volume attached %s after its creation", pods, nodes, since(began))
		Expect(repeatedPublishes()).To(BeZero())
	})

	It("detaches each ReadWriteOnce volume from its old node before publishing it on the new one when Pods move", func(ctx SpecContext) {
		ensureStatefulSet(ctx)
		before := snapshot(ctx, Default)
		from := c.NodeNames()[:nodes/2]
		old := map[string]string{} // PV -> node it leaves
		for _, pod := range podsOf(ctx) {
			if slices.Contains(from, pod.Spec.NodeName) {
				old[pvOf(pod)] = pod.Spec.NodeName
			}
		}
		Expect(old).NotTo(BeEmpty(), "no Pod runs on the nodes %v", from)
		began := time.Now()
		for _, node := range from {
			setUnschedulable(ctx, node, true)
		}
		DeferCleanup(func(ctx SpecContext) {
			for _, node := range from {
				setUnschedulable(ctx, node, false)
			}
		})
		for _, pod := range podsOf(ctx) {
			if slices.Contains(from, pod.Spec.NodeName) {
				Expect(c.Client.Delete(ctx, &pod)).To(Succeed())
			}
		}
		Eventually(func(g Gomega) {
			moved := 0
			for _, pod := range podsOf(ctx) {
				if _, ok := old[pvOf(pod)]; ok && pod.Spec.NodeName != "" && !slices.Contains(from, pod.Spec.NodeName) {
					moved++
				}
			}
			g.Expect(moved).To(Equal(len(old)))
		}).WithContext(ctx).Should(Succeed())
		waitRollout(ctx, pods)
		report("%d Pods moved off %d cordoned nodes: every volume attached on its new node %s after the first Pod was deleted", len(old), len(from), since(began))

		s := snapshot(ctx, Default)
		Expect(s.Driver.Overlaps).To(BeEmpty(), "a ReadWriteOnce volume was published on two nodes at once")
		unpublished, published := lastCalls(fake.MethodUnpublish, began), firstCalls(fake.MethodPublish, began)
		for pv, oldNode := range old {
			va, ok := s.VAFor(pv)
			Expect(ok).To(BeTrue(), "PV %s has one VolumeAttachment", pv)
			id := s.Expected[va.Name][0]
			off, on := unpublished[[2]string{id, cluster.NodeID(oldNode)}], published[[2]string{id, cluster.NodeID(va.Spec.NodeName)}]
			Expect(off.End).NotTo(BeZero(), "volume %s was never unpublished from %s", id, oldNode)
			Expect(on.Start).NotTo(BeZero(), "volume %s was never published to %s", id, va.Spec.NodeName)
			Expect(off.End).To(BeTemporally("<=", on.Start), "volume %s: published on %s before it left %s", id, va.Spec.NodeName, oldNode)
		}
		Expect(repeatedPublishes()).To(BeZero())
		Expect(before.Driver.Overlaps).To(BeEmpty())
	})

	It("detaches the volumes of a Node that is deleted", func(ctx SpecContext) {
		ensureStatefulSet(ctx)
		s := snapshot(ctx, Default)
		node := busiestNode(s)
		gone := s.VAsOn(node)
		Expect(gone).NotTo(BeEmpty())
		obj := &corev1.Node{}
		Expect(c.Client.Get(ctx, client.ObjectKey{Name: node}, obj)).To(Succeed())
		began := time.Now()
		Expect(c.Client.Delete(ctx, obj)).To(Succeed())
		var detached time.Duration
		Eventually(func(g Gomega) {
			s := snapshot(ctx, g)
			for _, name := range gone {
				g.Expect(s.VAs).NotTo(HaveKey(name))
			}
			for vol, onNodes := range s.Published {
				g.Expect(onNodes).NotTo(ContainElement(cluster.NodeID(node)), "volume %s is still published on the deleted node", vol)
			}
			detached = time.Since(began)
		}).WithContext(ctx).WithTimeout(5 * time.Minute).Should(Succeed())
		waitRollout(ctx, pods)
		report("Node %s deleted: its %d volumes detached after %s (kube-controller-manager's pod GC quarantine); every Pod running again %s after the deletion",
			node, len(gone), detached.Round(time.Second), since(began))

		// The node comes back, as a replaced machine joins under the same
		// name, once the garbage collector has removed its CSINode.
		Eventually(func() error {
			return c.Client.Get(ctx, client.ObjectKey{Name: node}, &storagev1.CSINode{})
		}).WithContext(ctx).Should(MatchError(ContainSubstring("not found")))
		Expect(c.AddNode(ctx, node)).To(Succeed())
	})

	It("completes a rollout when the attacher is SIGKILLed mid-way", func(ctx SpecContext) {
		ensureStatefulSet(ctx)
		scaleTo(ctx, 0)
		var killed time.Time
		rollout(ctx, pods, func() {
			killed = time.Now()
			for _, a := range c.Attachers() {
				a.Kill()
			}
			_, err := c.StartAttacher(ctx)
			Expect(err).NotTo(HaveOccurred())
		})
		// A publish that returned just before the kill, whose status the
		// attacher had no time to write, is rightly repeated; no other is.
		recent := map[string]bool{}
		for _, call := range calls(fake.MethodPublish, killed.Add(-2*time.Second)) {
			if call.End.Before(killed) && call.Code == "OK" {
				recent[call.VolumeID] = true
			}
		}
		for vol, n := range newRepeatedPublishes(ctx) {
			Expect(recent).To(HaveKey(vol), "volume %s was published again (%d times) with no reason", vol, n)
		}
	})

	It("hands over to the standby without a duplicate call when the leader is SIGTERMed mid-way", func(ctx SpecContext) {
		_, err := c.StartAttacher(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Attachers()).To(HaveLen(2))
		ensureStatefulSet(ctx)
		baseline := repeatedPublishes()
		scaleTo(ctx, 0)
		rollout(ctx, pods, func() {
			leader := leaderOf(ctx)
			began := time.Now()
			leader.Stop()
			report("leader %s stopped gracefully in %s", leader.Name, since(began))
		})
		Expect(repeatedPublishes()).To(Equal(baseline))
		// Two replicas again for what follows.
		_, err = c.StartAttacher(ctx)
		Expect(err).NotTo(HaveOccurred())
	})

	It("completes a rollout without a duplicate call when the driver restarts mid-way", func(ctx SpecContext) {
		ensureStatefulSet(ctx)
		baseline := repeatedPublishes()
		scaleTo(ctx, 0)
		rollout(ctx, pods, func() {
			Expect(c.RestartDriver()).To(Succeed())
		})
		Expect(repeatedPublishes()).To(Equal(baseline))
	})

	It("publishes ReadWriteMany and ReadOnlyMany volumes to several nodes with the right capability and readonly flag", func(ctx SpecContext) {
		const replicas = 3
		began := time.Now()
		for _, v := range []struct {
			name     string
			mode     corev1.PersistentVolumeAccessMode
			readonly bool
		}{{"rwx", corev1.ReadWriteMany, false}, {"rox", corev1.ReadOnlyMany, true}} {
			pv := c.CSIPV("pv-"+v.name, "vol-"+v.name, ns, "claim-"+v.name, v.mode)
			pv.Spec.CSI.ReadOnly = v.readonly
			Expect(c.Client.Create(ctx, pv)).To(Succeed())
			Expect(c.Client.Create(ctx, cluster.Claim(ns, "claim-"+v.name, pv.Name, v.mode))).To(Succeed())
			Expect(c.Client.Create(ctx, spreadReplicaSet(v.name, "claim-"+v.name, v.readonly, replicas))).To(Succeed())
		}
		waitRunning(ctx, map[string]string{"shared": "rwx"}, replicas)
		waitRunning(ctx, map[string]string{"shared": "rox"}, replicas)
		Eventually(func(g Gomega) {
			s := snapshot(ctx, g)
			g.Expect(s.Converged()).To(Succeed())
			g.Expect(s.Published["vol-rwx"]).To(HaveLen(replicas))
			g.Expect(s.Published["vol-rox"]).To(HaveLen(replicas))
		}).WithContext(ctx).Should(Succeed())

		for vol, want := range map[string]struct {
			mode     string
			readonly bool
		}{"vol-rwx": {"MULTI_NODE_MULTI_WRITER", false}, "vol-rox": {"MULTI_NODE_READER_ONLY", true}} {
			var seen []string
			for _, call := range calls(fake.MethodPublish, began) {
				if call.VolumeID != vol {
					continue
				}
				Expect(call.AccessMode).To(Equal(want.mode), "access mode of %s", vol)
				Expect(call.Readonly).To(Equal(want.readonly), "readonly of %s", vol)
				seen = append(seen, call.NodeID)
			}
			slices.Sort(seen)
			Expect(slices.Compact(seen)).To(HaveLen(replicas), "%s published to %d distinct nodes", vol, replicas)
		}
		Expect(snapshot(ctx, Default).Driver.Overlaps).To(BeEmpty())

		for _, name := range []string{"rwx", "rox"} {
			Expect(c.Client.Delete(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared-" + name}},
				client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			s := snapshot(ctx, g)
			g.Expect(s.Published).NotTo(HaveKey("vol-rwx"))
			g.Expect(s.Published).NotTo(HaveKey("vol-rox"))
		}).WithContext(ctx).Should(Succeed())
	})

	It("attaches and detaches an in-tree GCE PD volume through CSI migration", func(ctx SpecContext) {
		const pdName = "e2e-pd-1"
		translated := fmt.Sprintf("projects/UNSPECIFIED/zones/%s/disks/%s", cluster.Zone, pdName)
		complete := fake.GCEPDVolumeID(translated, cluster.NodeID(cluster.NodeName(0)))
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-gce-pd", Labels: map[string]string{corev1.LabelTopologyZone: cluster.Zone}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              cluster.StorageClass,
				ClaimRef:                      &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: ns, Name: "claim-gce-pd"},
				PersistentVolumeSource: corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{
					PDName: pdName, FSType: "ext4",
				}},
			},
		}
		Expect(c.Client.Create(ctx, pv)).To(Succeed())
		Expect(c.Client.Create(ctx, cluster.Claim(ns, "claim-gce-pd", pv.Name, corev1.ReadWriteOnce))).To(Succeed())
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gce-pd", Labels: map[string]string{"app": "gce-pd"}},
			Spec: cluster.PodSpec(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim-gce-pd"},
			}}),
		}
		pod.Spec.NodeSelector = map[string]string{corev1.LabelHostname: cluster.NodeName(0)}
		began := time.Now()
		Expect(c.Client.Create(ctx, pod)).To(Succeed())
		waitRunning(ctx, map[string]string{"app": "gce-pd"}, 1)
		Eventually(func(g Gomega) {
			s := snapshot(ctx, g)
			va, ok := s.VAFor(pv.Name)
			g.Expect(ok).To(BeTrue())
			g.Expect(s.Attached(va.Name)).To(Succeed())
			g.Expect(s.Published[complete]).To(Equal([]string{cluster.NodeID(cluster.NodeName(0))}))
		}).WithContext(ctx).Should(Succeed())
		published := calls(fake.MethodPublish, began)
		Expect(published).To(ContainElement(HaveField("VolumeID", translated)), "the driver was sent the handle csi-translation-lib makes")

		Expect(c.Client.Delete(ctx, pod)).To(Succeed())
		Eventually(func(g Gomega) {
			s := snapshot(ctx, g)
			_, ok := s.VAFor(pv.Name)
			g.Expect(ok).To(BeFalse())
			g.Expect(s.Published).NotTo(HaveKey(complete))
		}).WithContext(ctx).Should(Succeed())
		Expect(calls(fake.MethodUnpublish, began)).To(ContainElement(HaveField("VolumeID", translated)))
	})

	It("leaves nothing published and no finalizer of its own when everything scales to zero and is deleted", func(ctx SpecContext) {
		ensureStatefulSet(ctx)
		began := time.Now()
		scaleTo(ctx, 0)
		report("scaled to zero: every volume detached %s after the scale-down", since(began))
		Expect(c.Client.DeleteAllOf(ctx, &appsv1.StatefulSet{}, client.InNamespace(ns))).To(Succeed())
		Expect(c.Client.DeleteAllOf(ctx, &corev1.PersistentVolumeClaim{}, client.InNamespace(ns))).To(Succeed())
		var pvs corev1.PersistentVolumeList
		Expect(c.Client.List(ctx, &pvs)).To(Succeed())
		for _, pv := range pvs.Items {
			Expect(c.Client.Delete(ctx, &pv)).To(Succeed())
		}
		Eventually(func(g Gomega) {
			var left corev1.PersistentVolumeList
			g.Expect(c.Client.List(ctx, &left)).To(Succeed())
			g.Expect(left.Items).To(BeEmpty())
			s := snapshot(ctx, g)
			g.Expect(s.VAs).To(BeEmpty())
			g.Expect(s.Published).To(BeEmpty())
			g.Expect(s.Finalized).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
		Expect(snapshot(ctx, Default).Driver.Overlaps).To(BeEmpty())
	})
})

// report prints a figure and adds it to the suite's report.
func report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(GinkgoWriter, msg)
	AddReportEntry(msg)
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

func podsOf(ctx context.Context) []corev1.Pod {
	GinkgoHelper()
	pods, err := c.ListPods(ctx, ns, stsLabels)
	Expect(err).NotTo(HaveOccurred())
	return pods
}

// pvOf returns the PV pre-bound to the claim of a StatefulSet Pod.
func pvOf(pod corev1.Pod) string {
	var ordinal int
	_, err := fmt.Sscanf(pod.Name, sts+"-%d", &ordinal)
	Expect(err).NotTo(HaveOccurred())
	return cluster.PVName(ns, sts, ordinal)
}

// ensureStatefulSet creates the StatefulSet with every Pod unless it
// exists, so that each scenario can also run on its own
// (-ginkgo.focus).
func ensureStatefulSet(ctx context.Context) {
	GinkgoHelper()
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: sts}, &appsv1.StatefulSet{})
	if err == nil {
		return
	}
	Expect(client.IgnoreNotFound(err)).To(Succeed())
	Expect(c.Client.Create(ctx, cluster.StatefulSet(ns, sts, int32(pods)))).To(Succeed())
	waitRollout(ctx, pods)
}

func scale(ctx context.Context, replicas int) {
	GinkgoHelper()
	obj := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sts}}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas))
	Expect(c.Client.Patch(ctx, obj, patch)).To(Succeed())
}

// scaleTo scales the StatefulSet and waits until the rollout is complete.
func scaleTo(ctx context.Context, replicas int) {
	GinkgoHelper()
	scale(ctx, replicas)
	waitRollout(ctx, replicas)
}

// rollout scales the StatefulSet to replicas and calls strike once half of
// the VolumeAttachments exist and not all are attached, then waits for the
// rollout to complete with nothing leaked.
func rollout(ctx context.Context, replicas int, strike func()) {
	GinkgoHelper()
	began := time.Now()
	scale(ctx, replicas)
	Eventually(func(g Gomega) {
		s := snapshot(ctx, g)
		attached := 0
		for _, va := range s.VAs {
			if va.Status.Attached {
				attached++
			}
		}
		g.Expect(len(s.VAs)).To(BeNumerically(">=", replicas/2))
		g.Expect(attached).To(BeNumerically("<", replicas), "the rollout ended before the fault could strike")
	}).WithContext(ctx).WithPolling(20 * time.Millisecond).Should(Succeed())
	strike()
	waitRollout(ctx, replicas)
	report("rollout of %d Pods with a fault mid-way complete in %s", replicas, since(began))
}

// waitRollout waits until the StatefulSet has replicas Pods running, each
// with its volume attached on its node (as the user and the backend see
// it), and the driver holding nothing else.
func waitRollout(ctx context.Context, replicas int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		pods := podsOf(ctx)
		g.Expect(pods).To(HaveLen(replicas))
		s := snapshot(ctx, g)
		for _, pod := range pods {
			g.Expect(pod.DeletionTimestamp).To(BeNil(), "Pod %s is being deleted", pod.Name)
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "Pod %s", pod.Name)
			va, ok := s.VAFor(pvOf(pod))
			g.Expect(ok).To(BeTrue(), "Pod %s: one VolumeAttachment for its PV", pod.Name)
			g.Expect(va.Spec.NodeName).To(Equal(pod.Spec.NodeName), "Pod %s: VolumeAttachment %s", pod.Name, va.Name)
		}
		g.Expect(s.VAs).To(HaveLen(replicas))
		g.Expect(s.Converged()).To(Succeed())
	}).WithContext(ctx).Should(Succeed())
}

func waitRunning(ctx context.Context, labels map[string]string, n int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		pods, err := c.ListPods(ctx, ns, labels)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pods).To(HaveLen(n))
		for _, pod := range pods {
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "Pod %s", pod.Name)
		}
	}).WithContext(ctx).Should(Succeed())
}

// spreadReplicaSet returns a ReplicaSet of Pods sharing one claim, one Pod
// per node.
func spreadReplicaSet(name, claim string, readonly bool, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"shared": name}
	spec := cluster.PodSpec(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readonly},
	}})
	spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
			TopologyKey:   corev1.LabelHostname,
		}},
	}}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared-" + name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

func setUnschedulable(ctx context.Context, node string, on bool) {
	GinkgoHelper()
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"unschedulable":%t}}`, on))
	Expect(c.Client.Patch(ctx, obj, patch)).To(Succeed())
}

// busiestNode returns the node with the most VolumeAttachments.
func busiestNode(s *cluster.Snapshot) string {
	best, most := "", 0
	for _, node := range c.NodeNames() {
		if n := len(s.VAsOn(node)); n > most {
			best, most = node, n
		}
	}
	return best
}

// calls returns the driver's calls of method that started after since.
func calls(method string, since time.Time) []fake.CallRecord {
	GinkgoHelper()
	all, err := c.Calls(method)
	Expect(err).NotTo(HaveOccurred())
	var out []fake.CallRecord
	for _, call := range all {
		if !call.Start.Before(since) {
			out = append(out, call)
		}
	}
	return out
}

// lastCalls and firstCalls index the successful calls of method since a
// moment by (volume ID, node ID), keeping the last or the first.
func lastCalls(method string, since time.Time) map[[2]string]fake.CallRecord {
	out := map[[2]string]fake.CallRecord{}
	for _, call := range calls(method, since) {
		if call.Code == "OK" {
			out[[2]string{call.VolumeID, call.NodeID}] = call
		}
	}
	return out
}

func firstCalls(method string, since time.Time) map[[2]string]fake.CallRecord {
	out := map[[2]string]fake.CallRecord{}
	for _, call := range calls(method, since) {
		k := [2]string{call.VolumeID, call.NodeID}
		if _, ok := out[k]; !ok && call.Code == "OK" {
			out[k] = call
		}
	}
	return out
}

// repeatedPublishes counts every publish the driver received for a volume
// already published to the same node.
// publishBaseline is the driver's count of repeated publishes per volume
// when the container that checks them starts.
var publishBaseline map[string]int

// newRepeatedPublishes returns, per volume, the publishes repeated since
// publishBaseline was taken.
func newRepeatedPublishes(ctx context.Context) map[string]int {
	GinkgoHelper()
	out := map[string]int{}
	for vol, n := range snapshot(ctx, Default).Driver.RepeatedPublishes {
		if n > publishBaseline[vol] {
			out[vol] = n - publishBaseline[vol]
		}
	}
	return out
}

// repeatedPublishes counts the publishes repeated since publishBaseline was
// taken.
func repeatedPublishes() int {
	GinkgoHelper()
	n := 0
	for _, r := range newRepeatedPublishes(context.Background()) {
		n += r
	}
	return n
}

var leaderMetric = regexp.MustCompile(`(?m)^leader_election_master_status\{[^}]*\} 1$`)

// leaderOf returns the replica that leads, by its leader_election_master_status.
func leaderOf(ctx context.Context) *cluster.Attacher {
	GinkgoHelper()
	var leader *cluster.Attacher
	Eventually(func(g Gomega) {
		leader = nil
		for _, a := range c.Attachers() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Endpoints.MetricsURL(), nil)
			g.Expect(err).NotTo(HaveOccurred())
			resp, err := http.DefaultClient.Do(req)
			g.Expect(err).NotTo(HaveOccurred())
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			g.Expect(err).NotTo(HaveOccurred())
			if leaderMetric.Match(body) {
				g.Expect(leader).To(BeNil(), "two replicas lead at once")
				leader = a
			}
		}
		g.Expect(leader).NotTo(BeNil(), "no replica leads")
	}).WithContext(ctx).Should(Succeed())
	return leader
}
