package volume

import (
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

const (
	rwo  = corev1.ReadWriteOnce
	rox  = corev1.ReadOnlyMany
	rwx  = corev1.ReadWriteMany
	rwop = corev1.ReadWriteOncePod
)

func TestAccessMode(t *testing.T) {
	t.Parallel()
	const unknown = csipb.VolumeCapability_AccessMode_UNKNOWN
	tests := []struct {
		name  string
		modes []corev1.PersistentVolumeAccessMode
		// without and with the SINGLE_NODE_MULTI_WRITER capability
		without, with csipb.VolumeCapability_AccessMode_Mode
		// errContains is non-empty when both variants must fail.
		errContains string
	}{
		{
			name: "RWOP alone", modes: []corev1.PersistentVolumeAccessMode{rwop},
			without: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			with:    csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		},
		{
			name: "RWOP twice", modes: []corev1.PersistentVolumeAccessMode{rwop, rwop},
			without: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			with:    csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		},
		{
			name: "RWOP + RWO", modes: []corev1.PersistentVolumeAccessMode{rwop, rwo},
			errContains: "ReadWriteOncePod with other access modes",
		},
		{
			name: "RWO + RWOP", modes: []corev1.PersistentVolumeAccessMode{rwo, rwop},
			errContains: "ReadWriteOncePod with other access modes",
		},
		{
			name: "RWOP + ROX", modes: []corev1.PersistentVolumeAccessMode{rwop, rox},
			errContains: "ReadWriteOncePod with other access modes",
		},
		{
			name: "RWOP + RWX", modes: []corev1.PersistentVolumeAccessMode{rwx, rwop},
			errContains: "ReadWriteOncePod with other access modes",
		},
		{
			name: "RWX alone", modes: []corev1.PersistentVolumeAccessMode{rwx},
			without: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
			with:    csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		},
		{
			name: "RWX + RWO", modes: []corev1.PersistentVolumeAccessMode{rwo, rwx},
			without: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
			with:    csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		},
		{
			name: "RWX + ROX", modes: []corev1.PersistentVolumeAccessMode{rox, rwx},
			without: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
			with:    csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		},
		{
			name: "RWX + ROX + RWO", modes: []corev1.PersistentVolumeAccessMode{rox, rwo, rwx},
			without: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
			with:    csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		},
		{
			name: "ROX + RWO", modes: []corev1.PersistentVolumeAccessMode{rox, rwo},
			errContains: "CSI does not support ReadOnlyMany and ReadWriteOnce",
		},
		{
			name: "RWO + ROX", modes: []corev1.PersistentVolumeAccessMode{rwo, rox},
			errContains: "CSI does not support ReadOnlyMany and ReadWriteOnce",
		},
		{
			name: "ROX alone", modes: []corev1.PersistentVolumeAccessMode{rox},
			without: csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
			with:    csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		},
		{
			name: "RWO alone", modes: []corev1.PersistentVolumeAccessMode{rwo},
			without: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			with:    csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
		},
		{
			name: "RWO + unknown string is RWO", modes: []corev1.PersistentVolumeAccessMode{"Bogus", rwo},
			without: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			with:    csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
		},
		{
			name: "empty", modes: []corev1.PersistentVolumeAccessMode{},
			errContains: "unsupported AccessMode combination",
		},
		{
			name: "nil", modes: nil,
			errContains: "unsupported AccessMode combination",
		},
		{
			name: "only unknown strings", modes: []corev1.PersistentVolumeAccessMode{"Bogus", ""},
			errContains: "unsupported AccessMode combination",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, snmw := range []bool{false, true} {
				g := NewWithT(t)
				mode, err := AccessMode(tt.modes, snmw)
				if tt.errContains != "" {
					g.Expect(err).To(MatchError(ContainSubstring(tt.errContains)), "singleNodeMultiWriter=%v", snmw)
					g.Expect(mode).To(Equal(unknown), "singleNodeMultiWriter=%v", snmw)
					continue
				}
				g.Expect(err).NotTo(HaveOccurred(), "singleNodeMultiWriter=%v", snmw)
				want := tt.without
				if snmw {
					want = tt.with
				}
				g.Expect(mode).To(Equal(want), "singleNodeMultiWriter=%v", snmw)
			}
		})
	}
}

func TestAccessModeEmptyIsErrNoAccessModes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	_, err := AccessMode(nil, false)
	g.Expect(err).To(MatchError(ErrNoAccessModes))
	_, err = AccessMode([]corev1.PersistentVolumeAccessMode{}, true)
	g.Expect(err).To(MatchError(ErrNoAccessModes))
}

func TestAccessModeErrorNamesModes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	_, err := AccessMode([]corev1.PersistentVolumeAccessMode{rox, rwo}, false)
	g.Expect(err).To(MatchError(ContainSubstring("[ReadOnlyMany ReadWriteOnce]")))
	_, err = AccessMode([]corev1.PersistentVolumeAccessMode{rwop, rwx}, false)
	g.Expect(err).To(MatchError(ContainSubstring("[ReadWriteOncePod ReadWriteMany]")))
}

func ptrTo[T any](v T) *T { return &v }

func TestCapability(t *testing.T) {
	t.Parallel()
	block := corev1.PersistentVolumeBlock
	fs := corev1.PersistentVolumeFilesystem
	mount := func(fsType string, flags []string, mode csipb.VolumeCapability_AccessMode_Mode) *csipb.VolumeCapability {
		return &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: fsType, MountFlags: flags}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode},
		}
	}
	blockCap := func(mode csipb.VolumeCapability_AccessMode_Mode) *csipb.VolumeCapability {
		return &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode},
		}
	}
	csiSrc := func(fsType string) *corev1.CSIPersistentVolumeSource {
		return &corev1.CSIPersistentVolumeSource{Driver: "csi/test", VolumeHandle: "handle1", FSType: fsType}
	}
	tests := []struct {
		name          string
		spec          corev1.PersistentVolumeSpec
		defaultFSType string
		snmw          bool
		want          *csipb.VolumeCapability
		errContains   string
	}{
		{
			name:          "mount, fsType from spec wins over default",
			spec:          corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rwo}, PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("xfs")}},
			defaultFSType: "ext4",
			want:          mount("xfs", nil, csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		},
		{
			name:          "mount, empty spec fsType falls back to default",
			spec:          corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rwo}, PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("")}},
			defaultFSType: "ext4",
			want:          mount("ext4", nil, csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		},
		{
			name:          "mount, no CSI source falls back to default",
			spec:          corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rox}},
			defaultFSType: "ext4",
			want:          mount("ext4", nil, csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY),
		},
		{
			name: "mount, no fsType anywhere is empty",
			spec: corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rwx}, PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("")}},
			want: mount("", nil, csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER),
		},
		{
			name: "explicit Filesystem volumeMode is mount",
			spec: corev1.PersistentVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{rwo}, VolumeMode: &fs,
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("ext3")},
			},
			snmw: true,
			want: mount("ext3", nil, csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER),
		},
		{
			name: "unknown volumeMode is mount",
			spec: corev1.PersistentVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{rwo}, VolumeMode: ptrTo(corev1.PersistentVolumeMode("Other")),
			},
			defaultFSType: "ext4",
			want:          mount("ext4", nil, csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		},
		{
			name: "mount options are passed as mount flags",
			spec: corev1.PersistentVolumeSpec{
				AccessModes:            []corev1.PersistentVolumeAccessMode{rwop},
				MountOptions:           []string{"ro", "noatime", "nfsvers=4.1"},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("nfs")},
			},
			snmw: true,
			want: mount("nfs", []string{"ro", "noatime", "nfsvers=4.1"}, csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER),
		},
		{
			name: "block ignores fsType and mount options",
			spec: corev1.PersistentVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{rwo}, VolumeMode: &block,
				MountOptions:           []string{"noatime"},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("xfs")},
			},
			defaultFSType: "ext4",
			want:          blockCap(csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		},
		{
			name: "block with RWX",
			spec: corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rwx}, VolumeMode: &block},
			snmw: true,
			want: blockCap(csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER),
		},
		{
			name:        "bad access modes fail before anything else",
			spec:        corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{rox, rwo}, VolumeMode: &block},
			errContains: "CSI does not support ReadOnlyMany and ReadWriteOnce",
		},
		{
			name:          "no access modes",
			spec:          corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: csiSrc("xfs")}},
			defaultFSType: "ext4",
			errContains:   "unsupported AccessMode combination",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := Capability(&tt.spec, tt.defaultFSType, tt.snmw)
			if tt.errContains != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.errContains)))
				g.Expect(got).To(BeNil())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			// Compare the parts rather than the messages, which carry
			// protobuf internal state.
			g.Expect(got.GetAccessMode().GetMode()).To(Equal(tt.want.GetAccessMode().GetMode()))
			if tt.want.GetBlock() != nil {
				g.Expect(got.GetBlock()).NotTo(BeNil())
				g.Expect(got.GetMount()).To(BeNil())
				return
			}
			g.Expect(got.GetBlock()).To(BeNil())
			g.Expect(got.GetMount()).NotTo(BeNil())
			g.Expect(got.GetMount().GetFsType()).To(Equal(tt.want.GetMount().GetFsType()))
			g.Expect(got.GetMount().GetMountFlags()).To(Equal(tt.want.GetMount().GetMountFlags()))
			g.Expect(got.GetMount().GetVolumeMountGroup()).To(BeEmpty())
		})
	}
}

func TestCapabilityMountOptionsAreCopied(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	spec := &corev1.PersistentVolumeSpec{
		AccessModes:  []corev1.PersistentVolumeAccessMode{rwo},
		MountOptions: []string{"noatime", "ro"},
	}
	got, err := Capability(spec, "ext4", false)
	g.Expect(err).NotTo(HaveOccurred())
	flags := got.GetMount().GetMountFlags()
	g.Expect(flags).To(Equal([]string{"noatime", "ro"}))

	flags[0] = "changed"
	g.Expect(spec.MountOptions).To(Equal([]string{"noatime", "ro"}), "mutating the result must not change the spec")

	spec.MountOptions[1] = "rw"
	g.Expect(got.GetMount().GetMountFlags()).To(Equal([]string{"changed", "ro"}), "mutating the spec must not change the result")
}

func TestCapabilityDoesNotModifySpec(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	spec := &corev1.PersistentVolumeSpec{
		AccessModes:            []corev1.PersistentVolumeAccessMode{rwo},
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h"}},
	}
	orig := spec.DeepCopy()
	_, err := Capability(spec, "ext4", true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(spec).To(Equal(orig), "the default fsType must not be written into the spec")
}
