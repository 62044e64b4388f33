package cache_test

import (
	"maps"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/csi-translation-lib/plugins"
	"k8s.io/utils/ptr"

	"github.com/csi-attacher/csi-attacher/internal/cache"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

const trimDriver = "trim.csi.test"

func fullMeta(name string) metav1.ObjectMeta {
	now := metav1.Now()
	return metav1.ObjectMeta{
		Name: name, UID: types.UID("uid-" + name), ResourceVersion: "42",
		Labels:            map[string]string{"app": "db"},
		Annotations:       map[string]string{"big": "annotation", volume.MigratedToAnnotation: trimDriver},
		Finalizers:        []string{"example.com/other"},
		DeletionTimestamp: &now,
		ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
}

func TestTrimVolumeAttachment(t *testing.T) {
	trim := cache.TrimVolumeAttachment(trimDriver)
	tests := []struct {
		name   string
		in     *storagev1.VolumeAttachment
		expect func(g Gomega, out *storagev1.VolumeAttachment)
	}{{
		name: "ours keeps everything but managedFields",
		in: &storagev1.VolumeAttachment{ObjectMeta: fullMeta("a"), Spec: storagev1.VolumeAttachmentSpec{Attacher: trimDriver, NodeName: "n",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv")}},
			Status: storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"k": "v"}}},
		expect: func(g Gomega, out *storagev1.VolumeAttachment) {
			g.Expect(out.ManagedFields).To(BeNil())
			g.Expect(out.Annotations).To(HaveKey("big"))
			g.Expect(out.Finalizers).To(Equal([]string{"example.com/other"}))
			g.Expect(out.Status.AttachmentMetadata).To(HaveKeyWithValue("k", "v"))
		},
	}, {
		name: "another driver's keeps only what indexes and filters read",
		in: &storagev1.VolumeAttachment{ObjectMeta: fullMeta("b"), Spec: storagev1.VolumeAttachmentSpec{Attacher: "other", NodeName: "n",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv"), InlineVolumeSpec: &corev1.PersistentVolumeSpec{}}},
			Status: storagev1.VolumeAttachmentStatus{Attached: true}},
		expect: func(g Gomega, out *storagev1.VolumeAttachment) {
			g.Expect(out.Name).To(Equal("b"))
			g.Expect(out.ResourceVersion).To(Equal("42"))
			g.Expect(out.DeletionTimestamp).NotTo(BeNil())
			g.Expect(out.Spec.Attacher).To(Equal("other"))
			g.Expect(out.Spec.NodeName).To(Equal("n"))
			g.Expect(out.Spec.Source.PersistentVolumeName).To(Equal(ptr.To("pv")))
			g.Expect(out.Spec.Source.InlineVolumeSpec).To(BeNil())
			g.Expect(out.Annotations).To(BeNil())
			g.Expect(out.Labels).To(BeNil())
			g.Expect(out.Finalizers).To(BeNil())
			g.Expect(out.Status).To(Equal(storagev1.VolumeAttachmentStatus{}))
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := trim(tc.in)
			g.Expect(err).NotTo(HaveOccurred())
			tc.expect(g, out.(*storagev1.VolumeAttachment))
		})
	}
}

func TestTrimPersistentVolume(t *testing.T) {
	trim := cache.TrimPersistentVolume(trimDriver)
	ours := volume.FinalizerName(trimDriver)
	spec := func(driver string) corev1.PersistentVolumeSpec {
		return corev1.PersistentVolumeSpec{
			Capacity:     corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:  []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			MountOptions: []string{"noatime"},
			VolumeMode:   ptr.To(corev1.PersistentVolumeBlock),
			ClaimRef:     &corev1.ObjectReference{Name: "claim"},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: driver, VolumeHandle: "h", FSType: "xfs", VolumeAttributes: map[string]string{"a": "b"},
				ControllerPublishSecretRef: &corev1.SecretReference{Name: "s", Namespace: "ns"},
			}},
		}
	}
	tests := []struct {
		name   string
		in     *corev1.PersistentVolume
		expect func(g Gomega, out *corev1.PersistentVolume)
	}{{
		name: "ours keeps what the CSI request and finalizer patches need",
		in:   &corev1.PersistentVolume{ObjectMeta: fullMeta("p1"), Spec: spec(trimDriver)},
		expect: func(g Gomega, out *corev1.PersistentVolume) {
			g.Expect(out.Finalizers).To(Equal([]string{"example.com/other"}))
			g.Expect(out.DeletionTimestamp).NotTo(BeNil())
			g.Expect(out.Annotations).To(BeNil())
			g.Expect(out.Labels).To(BeNil())
			g.Expect(out.ManagedFields).To(BeNil())
			g.Expect(out.Spec.CSI).To(Equal(spec(trimDriver).CSI))
			g.Expect(out.Spec.AccessModes).To(Equal(spec(trimDriver).AccessModes))
			g.Expect(out.Spec.MountOptions).To(Equal([]string{"noatime"}))
			g.Expect(out.Spec.VolumeMode).To(Equal(ptr.To(corev1.PersistentVolumeBlock)))
			g.Expect(out.Spec.ClaimRef).To(BeNil())
			g.Expect(out.Spec.NodeAffinity).To(BeNil())
			g.Expect(out.Spec.Capacity).To(BeNil())
		},
	}, {
		name: "another driver's keeps the driver name only",
		in:   &corev1.PersistentVolume{ObjectMeta: fullMeta("p2"), Spec: spec("other")},
		expect: func(g Gomega, out *corev1.PersistentVolume) {
			g.Expect(out.Name).To(Equal("p2"))
			g.Expect(out.Finalizers).To(BeNil())
			g.Expect(out.Spec.CSI).To(Equal(&corev1.CSIPersistentVolumeSource{Driver: "other"}))
			g.Expect(out.Spec.AccessModes).To(BeNil())
		},
	}, {
		name: "another driver's with our finalizer keeps the whole finalizer list",
		in: func() *corev1.PersistentVolume {
			pv := &corev1.PersistentVolume{ObjectMeta: fullMeta("p3"), Spec: spec("other")}
			pv.Finalizers = append(pv.Finalizers, ours)
			return pv
		}(),
		expect: func(g Gomega, out *corev1.PersistentVolume) {
			g.Expect(out.Finalizers).To(Equal([]string{"example.com/other", ours}))
		},
	}, {
		name: "another plugin's in-tree PV keeps its source, not labels, node affinity or claim",
		in: &corev1.PersistentVolume{ObjectMeta: fullMeta("p4"), Spec: corev1.PersistentVolumeSpec{
			NodeAffinity: &corev1.VolumeNodeAffinity{}, ClaimRef: &corev1.ObjectReference{},
			PersistentVolumeSource: corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "pd"}},
		}},
		expect: func(g Gomega, out *corev1.PersistentVolume) {
			g.Expect(out.Spec.GCEPersistentDisk).NotTo(BeNil())
			g.Expect(out.Labels).To(BeNil())
			g.Expect(out.Annotations).To(BeNil())
			g.Expect(out.Spec.NodeAffinity).To(BeNil())
			g.Expect(out.Spec.ClaimRef).To(BeNil())
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := trim(tc.in)
			g.Expect(err).NotTo(HaveOccurred())
			tc.expect(g, out.(*corev1.PersistentVolume))
		})
	}
}

// An in-tree PV the driver took over keeps what translation and the
// migration-rollback check read: zone labels and the migrated-to annotation.
func TestTrimPersistentVolumeMigrated(t *testing.T) {
	const gcePD = "pd.csi.storage.gke.io"
	g := NewWithT(t)
	meta := fullMeta("p5")
	meta.Labels = map[string]string{corev1.LabelTopologyZone: "zone1"}
	meta.Annotations = map[string]string{volume.MigratedToAnnotation: gcePD, "kubectl.kubernetes.io/last-applied-configuration": "{}"}
	meta.Finalizers = []string{volume.FinalizerName(gcePD)}
	in := &corev1.PersistentVolume{ObjectMeta: meta, Spec: corev1.PersistentVolumeSpec{
		NodeAffinity: &corev1.VolumeNodeAffinity{}, ClaimRef: &corev1.ObjectReference{},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "pd"}},
	}}
	out, err := cache.TrimPersistentVolume(gcePD)(in.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	pv := out.(*corev1.PersistentVolume)
	g.Expect(pv.Labels).To(Equal(meta.Labels))
	g.Expect(pv.Annotations).To(Equal(map[string]string{volume.MigratedToAnnotation: gcePD}))
	g.Expect(pv.Finalizers).To(Equal(meta.Finalizers))
	g.Expect(pv.ManagedFields).To(BeNil())
	g.Expect(pv.Spec.GCEPersistentDisk).To(Equal(in.Spec.GCEPersistentDisk))
	g.Expect(pv.Spec.AccessModes).To(Equal(in.Spec.AccessModes))
	g.Expect(pv.Spec.NodeAffinity).To(BeNil())
	g.Expect(pv.Spec.ClaimRef).To(BeNil())

	src, err := volume.PVSource(pv, gcePD)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(src.CSI().VolumeHandle).To(Equal("projects/UNSPECIFIED/zones/zone1/disks/pd"))
}

func TestTrimCSINode(t *testing.T) {
	g := NewWithT(t)
	in := &storagev1.CSINode{ObjectMeta: fullMeta("n"), Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
		{Name: "other", NodeID: "x"},
		{Name: trimDriver, NodeID: "id", TopologyKeys: []string{"zone"}, Allocatable: &storagev1.VolumeNodeResources{Count: ptr.To(int32(3))}},
	}}}
	out, err := cache.TrimCSINode(trimDriver)(in)
	g.Expect(err).NotTo(HaveOccurred())
	node := out.(*storagev1.CSINode)
	g.Expect(node.Name).To(Equal("n"))
	g.Expect(node.Spec.Drivers).To(Equal([]storagev1.CSINodeDriver{{Name: trimDriver, NodeID: "id"}}))
	g.Expect(node.Labels).To(BeNil())
}

// TestTrimmedPVTranslatesAsTheFullPV checks, for every plugin
// csi-translation-lib ships, that an in-tree PV as the cache keeps it
// translates to the same CSI request as the PV itself: everything the
// translation reads (labels, node affinity, the plugins' annotations, the
// claim's namespace) survives the trim.
func TestTrimmedPVTranslatesAsTheFullPV(t *testing.T) {
	zones := func(zone string) *corev1.VolumeNodeAffinity {
		return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpIn, Values: []string{zone}}},
		}}}}
	}
	type pvCase struct {
		name        string
		driver      string
		labels      map[string]string
		annotations map[string]string
		spec        corev1.PersistentVolumeSpec
	}
	source := func(s corev1.PersistentVolumeSource) corev1.PersistentVolumeSpec {
		return corev1.PersistentVolumeSpec{PersistentVolumeSource: s}
	}
	withClaim := func(spec corev1.PersistentVolumeSpec, namespace string) corev1.PersistentVolumeSpec {
		spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: namespace, Name: "claim", UID: "uid"}
		return spec
	}
	withAffinity := func(spec corev1.PersistentVolumeSpec, zone string) corev1.PersistentVolumeSpec {
		spec.NodeAffinity = zones(zone)
		return spec
	}
	gce := source(corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "pd", FSType: "xfs", Partition: 2, ReadOnly: true}})
	ebs := source(corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "aws://us-east-1a/vol-0123", FSType: "ext4", Partition: 1}})
	disk := source(corev1.PersistentVolumeSource{AzureDisk: &corev1.AzureDiskVolumeSource{DiskName: "d", DataDiskURI: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d",
		CachingMode: ptr.To(corev1.AzureDataDiskCachingReadOnly), FSType: ptr.To("ext4"), ReadOnly: ptr.To(true), Kind: ptr.To(corev1.AzureManagedDisk)}})
	sharedDisk := disk
	sharedDisk.AzureDisk = disk.AzureDisk.DeepCopy()
	sharedDisk.AzureDisk.Kind = ptr.To(corev1.AzureSharedBlobDisk)
	file := source(corev1.PersistentVolumeSource{AzureFile: &corev1.AzureFilePersistentVolumeSource{SecretName: "azure-storage-account-acct-secret", ShareName: "share", ReadOnly: true}})
	fileNS := file
	fileNS.AzureFile = file.AzureFile.DeepCopy()
	fileNS.AzureFile.SecretNamespace = ptr.To("secret-ns")
	cinder := source(corev1.PersistentVolumeSource{Cinder: &corev1.CinderPersistentVolumeSource{VolumeID: "c-1", FSType: "ext4", ReadOnly: true}})
	vsphere := source(corev1.PersistentVolumeSource{VsphereVolume: &corev1.VsphereVirtualDiskVolumeSource{VolumePath: "[ds] v.vmdk", FSType: "ext4", StoragePolicyName: "gold"}})
	px := source(corev1.PersistentVolumeSource{PortworxVolume: &corev1.PortworxVolumeSource{VolumeID: "px-1", FSType: "ext4"}})
	const (
		pxName      = "openstorage.io/auth-secret-name"
		pxNamespace = "openstorage.io/auth-secret-namespace"
		azureRG     = "kubernetes.io/azure-file-resource-group"
	)
	zoneGA := map[string]string{corev1.LabelTopologyZone: "zone-a", corev1.LabelTopologyRegion: "region-1"}
	zoneBeta := map[string]string{corev1.LabelFailureDomainBetaZone: "zone-b", corev1.LabelFailureDomainBetaRegion: "region-2"}
	regional := map[string]string{corev1.LabelTopologyZone: "us-central1-a__us-central1-b"}

	cases := []pvCase{
		{name: "GCE PD, GA zone label", driver: plugins.GCEPDDriverName, labels: zoneGA, spec: gce},
		{name: "GCE PD, beta zone label", driver: plugins.GCEPDDriverName, labels: zoneBeta, spec: gce},
		{name: "GCE PD, regional", driver: plugins.GCEPDDriverName, labels: regional, spec: gce},
		{name: "GCE PD, node affinity", driver: plugins.GCEPDDriverName, labels: zoneGA, spec: withAffinity(gce, "zone-c")},
		{name: "GCE PD, no zone", driver: plugins.GCEPDDriverName, spec: gce},
		{name: "AWS EBS", driver: plugins.AWSEBSDriverName, labels: zoneGA, spec: withAffinity(ebs, "us-east-1a")},
		{name: "AWS EBS, beta labels", driver: plugins.AWSEBSDriverName, labels: zoneBeta, spec: ebs},
		{name: "Azure Disk", driver: plugins.AzureDiskDriverName, labels: zoneGA, spec: disk},
		{name: "Azure Disk, unsupported kind", driver: plugins.AzureDiskDriverName, spec: sharedDisk},
		{name: "Azure File, resource group and claim namespace", driver: plugins.AzureFileDriverName,
			annotations: map[string]string{azureRG: "rg-1"}, spec: withClaim(file, "claim-ns")},
		{name: "Azure File, secret namespace wins over the claim's", driver: plugins.AzureFileDriverName,
			annotations: map[string]string{azureRG: "rg-2"}, spec: withClaim(fileNS, "claim-ns")},
		{name: "Azure File, claim namespace only", driver: plugins.AzureFileDriverName, spec: withClaim(file, "claim-ns")},
		{name: "Azure File, no namespace anywhere", driver: plugins.AzureFileDriverName, spec: file},
		{name: "Cinder", driver: plugins.CinderDriverName, labels: zoneBeta, spec: withAffinity(cinder, "nova")},
		{name: "vSphere", driver: plugins.VSphereDriverName, labels: zoneGA, spec: vsphere},
		{name: "vSphere, beta labels", driver: plugins.VSphereDriverName, labels: zoneBeta, spec: vsphere},
		{name: "Portworx with its auth Secret", driver: plugins.PortworxDriverName,
			annotations: map[string]string{pxName: "px-secret", pxNamespace: "px-ns"}, spec: px},
		{name: "Portworx with half the auth Secret", driver: plugins.PortworxDriverName,
			annotations: map[string]string{pxName: "px-secret"}, spec: px},
		{name: "Portworx without auth", driver: plugins.PortworxDriverName, spec: withClaim(px, "claim-ns")},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			covered[tc.driver] = true
			meta := fullMeta("mig-" + tc.driver)
			meta.Labels = map[string]string{"app": "db"}
			maps.Copy(meta.Labels, tc.labels)
			meta.Annotations = map[string]string{volume.MigratedToAnnotation: tc.driver,
				"kubectl.kubernetes.io/last-applied-configuration": "{}", "pv.kubernetes.io/provisioned-by": "kubernetes.io/x"}
			maps.Copy(meta.Annotations, tc.annotations)
			spec := tc.spec
			spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany}
			spec.MountOptions = []string{"noatime"}
			spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
			full := &corev1.PersistentVolume{ObjectMeta: meta, Spec: spec}
			g.Expect(volume.MigratesTo(full, tc.driver)).To(BeTrue(), "the case must be an in-tree PV of the driver")

			out, err := cache.TrimPersistentVolume(tc.driver)(full.DeepCopy())
			g.Expect(err).NotTo(HaveOccurred())
			trimmed := out.(*corev1.PersistentVolume)

			want, wantErr := volume.PVSource(full, tc.driver)
			got, gotErr := volume.PVSource(trimmed, tc.driver)
			if wantErr != nil {
				g.Expect(gotErr).To(MatchError(wantErr.Error()))
				return
			}
			g.Expect(gotErr).NotTo(HaveOccurred())
			// Everything of the translated PV the attacher reads.
			g.Expect(got.CSI()).To(Equal(want.CSI()))
			g.Expect(got.Spec.PersistentVolumeSource).To(Equal(want.Spec.PersistentVolumeSource))
			g.Expect(got.Spec.AccessModes).To(Equal(want.Spec.AccessModes))
			g.Expect(got.Spec.MountOptions).To(Equal(want.Spec.MountOptions))
			g.Expect(got.Spec.VolumeMode).To(Equal(want.Spec.VolumeMode))
			g.Expect(got.PVName).To(Equal(want.PVName))
			g.Expect(got.Migrated).To(Equal(want.Migrated))
		})
	}
	for _, driver := range []string{plugins.GCEPDDriverName, plugins.AWSEBSDriverName, plugins.AzureDiskDriverName,
		plugins.AzureFileDriverName, plugins.CinderDriverName, plugins.VSphereDriverName, plugins.PortworxDriverName} {
		if !volume.IsMigrationDriver(driver) {
			t.Errorf("%s is no longer a migration driver of csi-translation-lib", driver)
		}
		if !covered[driver] {
			t.Errorf("no case for %s", driver)
		}
	}
}
