package cluster

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NodeName is the name of the i-th simulated node.
func NodeName(i int) string { return fmt.Sprintf("e2e-node-%03d", i) }

// NodeID is the driver's ID of a node, shaped as GCE's instance IDs so
// that migrated GCE PD handles can be completed from it.
func NodeID(node string) string {
	return fmt.Sprintf("projects/%s/zones/%s/instances/%s", Project, Zone, node)
}

// NodeNames returns the names of the cluster's nodes.
func (c *Cluster) NodeNames() []string {
	names := make([]string, c.Nodes)
	for i := range names {
		names[i] = NodeName(i)
	}
	return names
}

// createNodes creates the nodes kwok simulates (see AddNode).
func (c *Cluster) createNodes(ctx context.Context) error {
	c.logf("creating %d nodes and their CSINodes", c.Nodes)
	for _, name := range c.NodeNames() {
		if err := c.AddNode(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// AddNode creates a node that hands its volumes to
// kube-controller-manager, as kwok simulates it, and its CSINode with the
// driver and the migrated GCE PD plugin, owned by the Node as the kubelet
// makes it, so the garbage collector removes it with its Node.
func (c *Cluster) AddNode(ctx context.Context, name string) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			corev1.LabelHostname:     name,
			corev1.LabelOSStable:     "linux",
			corev1.LabelArchStable:   "amd64",
			corev1.LabelTopologyZone: Zone,
			// The zone key of the GCE PD driver: kube-scheduler matches
			// a migrated GCE PD volume's translated node affinity with it.
			"topology.gke.io/zone": Zone,
		},
		Annotations: map[string]string{ControllerManagedAnnotation: "true"},
	}}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	if err := c.Client.Create(ctx, c.CSINode(node)); err != nil {
		return fmt.Errorf("creating CSINode %s: %w", name, err)
	}
	return nil
}

// CSINode returns the CSINode a kubelet with the driver registered would
// create for node.
func (c *Cluster) CSINode(node *corev1.Node) *storagev1.CSINode {
	return &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{
			Name:        node.Name,
			Annotations: map[string]string{MigratedPluginsAnnotation: GCEPDPlugin},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}},
		},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name:         c.Driver,
			NodeID:       NodeID(node.Name),
			TopologyKeys: []string{corev1.LabelTopologyZone},
		}}},
	}
}

// ClaimName is the name of the PVC a StatefulSet's volumeClaimTemplate
// "data" creates for its i-th Pod.
func ClaimName(sts string, i int) string { return fmt.Sprintf("data-%s-%d", sts, i) }

// VolumeHandle is the handle of the CSI volume pre-provisioned for a
// StatefulSet's i-th Pod.
func VolumeHandle(sts string, i int) string { return fmt.Sprintf("vol-%s-%d", sts, i) }

// CSIPV returns a statically provisioned CSI PersistentVolume bound in
// advance to the claim ns/claim, as an administrator creates one for a
// StatefulSet: the PV binder binds it when the StatefulSet creates the
// claim.
func (c *Cluster) CSIPV(name, handle, ns, claim string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   modes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              StorageClass,
			ClaimRef:                      &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: ns, Name: claim},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: c.Driver, VolumeHandle: handle, FSType: "ext4",
			}},
		},
	}
}

// Claim returns a PVC of the test class for the pre-bound PV volumeName.
func Claim(ns, name, volumeName string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: ptr.To(StorageClass),
			VolumeName:       volumeName,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi"),
			}},
		},
	}
}

// StatefulSet returns a StatefulSet of replicas Pods, each with a
// ReadWriteOnce volume from the claim template "data". Pods start in
// parallel, as a rollout of many independent replicas does.
func StatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: PodSpec(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
				}}),
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: ptr.To(StorageClass),
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi"),
					}},
				},
			}},
		},
	}
}

// PodSpec returns the spec of a test Pod mounting volume at /data. kwok
// runs no container; the image is never pulled.
func PodSpec(volume corev1.Volume) corev1.PodSpec {
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		Containers: []corev1.Container{{
			Name:         "app",
			Image:        "registry.k8s.io/pause:3.10",
			VolumeMounts: []corev1.VolumeMount{{Name: volume.Name, MountPath: "/data"}},
		}},
		Volumes: []corev1.Volume{volume},
	}
}

// CreateStatefulSetVolumes creates the PVs of the first replicas Pods of
// the StatefulSet ns/sts, pre-bound to the claims it will create.
func (c *Cluster) CreateStatefulSetVolumes(ctx context.Context, ns, sts string, replicas int) error {
	for i := range replicas {
		pv := c.CSIPV(PVName(ns, sts, i), VolumeHandle(sts, i), ns, ClaimName(sts, i))
		if err := c.Client.Create(ctx, pv); err != nil {
			return fmt.Errorf("creating PV %s: %w", pv.Name, err)
		}
	}
	return nil
}

// PVName is the name of the PV pre-provisioned for a StatefulSet's i-th Pod.
func PVName(ns, sts string, i int) string { return fmt.Sprintf("pv-%s-%s-%d", ns, sts, i) }

// CreateNamespace creates ns and waits for its default ServiceAccount,
// without which the API server refuses its Pods.
func (c *Cluster) CreateNamespace(ctx context.Context, ns string) error {
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	return c.poll(ctx, func() (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, client.IgnoreNotFound(err)
	})
}
