package volume

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func inTreePV(src corev1.PersistentVolumeSource, labels, annotations map[string]string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1", Labels: labels, Annotations: annotations},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: src,
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: "claim1"},
		},
	}
}

// Every in-tree plugin csi-translation-lib covers is translated to its
// driver; the handle is the translation library's, never our own.
func TestPVSourceTranslatesInTreePlugins(t *testing.T) {
	t.Parallel()
	zone := map[string]string{corev1.LabelTopologyZone: "testZone"}
	tests := []struct {
		name       string
		driver     string
		src        corev1.PersistentVolumeSource
		labels     map[string]string
		wantHandle string
		wantCtx    map[string]string
	}{
		{
			name: "GCE PD, zonal", driver: "pd.csi.storage.gke.io", labels: zone,
			src:        corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "testpd"}},
			wantHandle: "projects/UNSPECIFIED/zones/testZone/disks/testpd",
			wantCtx:    map[string]string{"partition": ""},
		},
		{
			name: "GCE PD, partition", driver: "pd.csi.storage.gke.io", labels: zone,
			src:        corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "testpd", Partition: 2}},
			wantHandle: "projects/UNSPECIFIED/zones/testZone/disks/testpd",
			wantCtx:    map[string]string{"partition": "2"},
		},
		{
			name: "GCE PD, no zone label", driver: "pd.csi.storage.gke.io",
			src:        corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "testpd"}},
			wantHandle: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd",
			wantCtx:    map[string]string{"partition": ""},
		},
		{
			name: "AWS EBS", driver: "ebs.csi.aws.com",
			src:        corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "aws://us-east-1a/vol-0123456789"}},
			wantHandle: "vol-0123456789",
		},
		{
			name: "Azure Disk", driver: "disk.csi.azure.com",
			src: corev1.PersistentVolumeSource{AzureDisk: &corev1.AzureDiskVolumeSource{
				DiskName: "disk1", DataDiskURI: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/disk1",
			}},
			wantHandle: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/disk1",
		},
		{
			name: "Cinder", driver: "cinder.csi.openstack.org",
			src:        corev1.PersistentVolumeSource{Cinder: &corev1.CinderPersistentVolumeSource{VolumeID: "cinder-vol-1"}},
			wantHandle: "cinder-vol-1",
		},
		{
			name: "Portworx", driver: "pxd.portworx.com",
			src:        corev1.PersistentVolumeSource{PortworxVolume: &corev1.PortworxVolumeSource{VolumeID: "px-vol-1"}},
			wantHandle: "px-vol-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			pv := inTreePV(tt.src, tt.labels, nil)
			before := pv.DeepCopy()
			g.Expect(MigratesTo(pv, tt.driver)).To(BeTrue())
			g.Expect(IsMigrationDriver(tt.driver)).To(BeTrue())

			src, err := PVSource(pv, tt.driver)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(src.Migrated).To(BeTrue())
			g.Expect(src.PVName).To(Equal("pv1"))
			g.Expect(src.CSI().Driver).To(Equal(tt.driver))
			g.Expect(src.CSI().VolumeHandle).To(Equal(tt.wantHandle))
			if tt.wantCtx != nil {
				g.Expect(src.CSI().VolumeAttributes).To(Equal(tt.wantCtx))
			}
			g.Expect(pv).To(Equal(before), "the cached PV must not be modified")

			// Another migration driver never claims this PV.
			g.Expect(MigratesTo(pv, "other.csi.example.com")).To(BeFalse())
			_, err = PVSource(pv, "other.csi.example.com")
			g.Expect(err).To(MatchError(ErrWrongCSIDriver))
		})
	}
}

// vSphere and Azure File handles are built from several fields; what
// matters here is that they reach the right driver with a handle naming the
// volume.
func TestPVSourceTranslatesCompositeHandles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, driver, inHandle string
		src                    corev1.PersistentVolumeSource
	}{
		{
			name: "vSphere", driver: "csi.vsphere.vmware.com", inHandle: "kubevols/vol1.vmdk",
			src: corev1.PersistentVolumeSource{VsphereVolume: &corev1.VsphereVirtualDiskVolumeSource{VolumePath: "[datastore1] kubevols/vol1.vmdk"}},
		},
		{
			name: "Azure File", driver: "file.csi.azure.com", inHandle: "share1",
			src: corev1.PersistentVolumeSource{AzureFile: &corev1.AzureFilePersistentVolumeSource{SecretName: "azure-storage-account-acct1-secret", ShareName: "share1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			src, err := PVSource(inTreePV(tt.src, nil, nil), tt.driver)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(src.Migrated).To(BeTrue())
			g.Expect(src.CSI().Driver).To(Equal(tt.driver))
			g.Expect(src.CSI().VolumeHandle).To(ContainSubstring(tt.inHandle))
		})
	}
}

func TestMigrationRolledBack(t *testing.T) {
	t.Parallel()
	const gcePD = "pd.csi.storage.gke.io"
	gce := corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "testpd"}}
	tests := []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{name: "annotation names us", pv: inTreePV(gce, nil, map[string]string{MigratedToAnnotation: gcePD})},
		{name: "annotation removed", pv: inTreePV(gce, nil, nil), want: true},
		{name: "annotation names another driver", pv: inTreePV(gce, nil, map[string]string{MigratedToAnnotation: "other.csi.example.com"}), want: true},
		{name: "CSI PV is never rolled back", pv: &corev1.PersistentVolume{Spec: *csiSpec(gcePD, "h")}},
		{name: "another plugin's PV", pv: inTreePV(corev1.PersistentVolumeSource{Cinder: &corev1.CinderPersistentVolumeSource{VolumeID: "v"}}, nil, nil)},
		{name: "plugin without migration", pv: inTreePV(corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}, nil, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			NewWithT(t).Expect(MigrationRolledBack(tt.pv, gcePD)).To(Equal(tt.want))
		})
	}
}

func TestRepairHandle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, driver, handle, nodeID, want string
		wantErr                            bool
	}{
		{
			name: "GCE PD gets project and zone from the node", driver: "pd.csi.storage.gke.io",
			handle: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd", nodeID: "projects/proj1/zones/zone1/instances/node1",
			want: "projects/proj1/zones/zone1/disks/testpd",
		},
		{
			name: "GCE PD keeps a complete handle", driver: "pd.csi.storage.gke.io",
			handle: "projects/p/zones/z/disks/d", nodeID: "projects/proj1/zones/zone1/instances/node1",
			want: "projects/p/zones/z/disks/d",
		},
		{
			name: "GCE PD with a malformed node ID keeps the handle", driver: "pd.csi.storage.gke.io",
			handle: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd", nodeID: "node1",
			want: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd", wantErr: true,
		},
		{
			name: "a driver without migration is left alone", driver: "csi.example.com",
			handle: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd", nodeID: "node1",
			want: "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/testpd",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := RepairHandle(tt.driver, tt.handle, tt.nodeID)
			g.Expect(got).To(Equal(tt.want))
			if tt.wantErr {
				g.Expect(err).To(HaveOccurred())
				g.Expect(err.Error()).To(ContainSubstring(tt.nodeID))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}
