package volume

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testDriver = "csi/test"

func vaWith(pvName *string, inline *corev1.PersistentVolumeSpec) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1-node1"},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: testDriver,
			NodeName: "node1",
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: pvName, InlineVolumeSpec: inline},
		},
	}
}

func csiSpec(driver, handle string) *corev1.PersistentVolumeSpec {
	return &corev1.PersistentVolumeSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{
			CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: handle},
		},
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// The upstream attacher stores these messages in attachError/detachError.
	g.Expect(ErrBothSources.Error()).To(Equal("both InlineCSIVolumeSource and PersistentVolumeName specified in VA source"))
	g.Expect(ErrNeitherSource.Error()).To(Equal("neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source"))
	g.Expect(ErrInlineNilCSI.Error()).To(Equal("inline volume spec contains nil CSI source"))
	g.Expect(ErrNoAccessModes.Error()).To(ContainSubstring("unsupported AccessMode combination"))
}

func TestPVNameOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		va      *storagev1.VolumeAttachment
		want    string
		wantErr error
	}{
		{name: "PV name", va: vaWith(ptrTo("pv1"), nil), want: "pv1"},
		{name: "inline spec has no PV", va: vaWith(nil, csiSpec(testDriver, "handle1")), want: ""},
		{name: "inline spec with nil CSI still has no PV", va: vaWith(nil, &corev1.PersistentVolumeSpec{}), want: ""},
		{name: "both sources", va: vaWith(ptrTo("pv1"), csiSpec(testDriver, "handle1")), wantErr: ErrBothSources},
		{name: "both sources with empty PV name", va: vaWith(ptrTo(""), csiSpec(testDriver, "handle1")), wantErr: ErrBothSources},
		{name: "neither source", va: vaWith(nil, nil), wantErr: ErrNeitherSource},
		{name: "empty PV name is no source", va: vaWith(ptrTo(""), nil), wantErr: ErrNeitherSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := PVNameOf(tt.va)
			if tt.wantErr != nil {
				g.Expect(err).To(MatchError(tt.wantErr))
				g.Expect(got).To(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestInlineSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		va          *storagev1.VolumeAttachment
		wantErr     error
		errContains []string
	}{
		{name: "valid", va: vaWith(nil, csiSpec(testDriver, "handle1"))},
		{name: "no inline spec", va: vaWith(ptrTo("pv1"), nil), wantErr: ErrInlineNilCSI},
		{name: "nil CSI", va: vaWith(nil, &corev1.PersistentVolumeSpec{}), wantErr: ErrInlineNilCSI},
		{
			name: "non-CSI inline source is nil CSI",
			va: vaWith(nil, &corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"},
			}}),
			wantErr: ErrInlineNilCSI,
		},
		{
			name: "empty volumeHandle", va: vaWith(nil, csiSpec(testDriver, "")),
			wantErr: ErrEmptyHandle, errContains: []string{"inline volume spec"},
		},
		{
			name: "another driver", va: vaWith(nil, csiSpec("other.driver", "handle1")),
			wantErr: ErrWrongCSIDriver, errContains: []string{"inline volume spec", `"other.driver"`, `"csi/test"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			src, err := InlineSource(tt.va, testDriver)
			if tt.wantErr != nil {
				g.Expect(err).To(MatchError(tt.wantErr))
				for _, s := range tt.errContains {
					g.Expect(err.Error()).To(ContainSubstring(s))
				}
				g.Expect(src).To(Equal(Source{}))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(src.Spec).To(BeIdenticalTo(tt.va.Spec.Source.InlineVolumeSpec))
			g.Expect(src.PVName).To(BeEmpty())
			g.Expect(src.Inline()).To(BeTrue())
			g.Expect(src.CSI()).To(BeIdenticalTo(tt.va.Spec.Source.InlineVolumeSpec.CSI))
			g.Expect(src.CSI().VolumeHandle).To(Equal("handle1"))
		})
	}
}

func TestPVSource(t *testing.T) {
	t.Parallel()
	pv := func(spec *corev1.PersistentVolumeSpec) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: *spec}
	}
	tests := []struct {
		name        string
		pv          *corev1.PersistentVolume
		wantErr     error
		errContains []string
	}{
		{name: "valid", pv: pv(csiSpec(testDriver, "handle1"))},
		{
			name: "an in-tree source without migration names the PV",
			pv: pv(&corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				NFS: &corev1.NFSVolumeSource{Server: "nfs.example.com", Path: "/export"},
			}}),
			wantErr: ErrNotCSI, errContains: []string{`PersistentVolume "pv1"`},
		},
		{
			name: "empty spec names the PV", pv: pv(&corev1.PersistentVolumeSpec{}),
			wantErr: ErrNotCSI, errContains: []string{`PersistentVolume "pv1"`},
		},
		{
			name: "empty volumeHandle", pv: pv(csiSpec(testDriver, "")),
			wantErr: ErrEmptyHandle, errContains: []string{`PersistentVolume "pv1"`},
		},
		{
			name: "another driver names both drivers", pv: pv(csiSpec("hostpath.csi.k8s.io", "handle1")),
			wantErr: ErrWrongCSIDriver, errContains: []string{`PersistentVolume "pv1"`, `"hostpath.csi.k8s.io"`, `"csi/test"`},
		},
		{
			name: "driver name comparison is exact", pv: pv(csiSpec("CSI/TEST", "handle1")),
			wantErr: ErrWrongCSIDriver, errContains: []string{`"CSI/TEST"`, `"csi/test"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			src, err := PVSource(tt.pv, testDriver)
			if tt.wantErr != nil {
				g.Expect(err).To(MatchError(tt.wantErr))
				for _, s := range tt.errContains {
					g.Expect(err.Error()).To(ContainSubstring(s))
				}
				g.Expect(src).To(Equal(Source{}))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(src.PVName).To(Equal("pv1"))
			g.Expect(src.Inline()).To(BeFalse())
			g.Expect(src.Spec).To(BeIdenticalTo(&tt.pv.Spec))
			g.Expect(src.CSI()).To(BeIdenticalTo(tt.pv.Spec.CSI))
		})
	}
}

func TestNodeID(t *testing.T) {
	t.Parallel()
	node := func(drivers ...storagev1.CSINodeDriver) *storagev1.CSINode {
		return &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Spec: storagev1.CSINodeSpec{Drivers: drivers}}
	}
	tests := []struct {
		name   string
		node   *storagev1.CSINode
		want   string
		errMsg string
	}{
		{
			name: "found", node: node(storagev1.CSINodeDriver{Name: testDriver, NodeID: "nodeID1"}),
			want: "nodeID1",
		},
		{
			name: "found among other drivers",
			node: node(
				storagev1.CSINodeDriver{Name: "other", NodeID: "otherID"},
				storagev1.CSINodeDriver{Name: testDriver, NodeID: "nodeID1"},
			),
			want: "nodeID1",
		},
		{
			name:   "no drivers",
			node:   node(),
			errMsg: "CSINode node1 does not contain driver csi/test",
		},
		{
			name:   "only other drivers",
			node:   node(storagev1.CSINodeDriver{Name: "other", NodeID: "otherID"}),
			errMsg: "CSINode node1 does not contain driver csi/test",
		},
		{
			name:   "empty node ID",
			node:   node(storagev1.CSINodeDriver{Name: testDriver}),
			errMsg: "CSINode node1 has an empty node ID for driver csi/test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := NodeID(tt.node, testDriver)
			if tt.errMsg != "" {
				g.Expect(err).To(MatchError(tt.errMsg))
				g.Expect(got).To(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}
