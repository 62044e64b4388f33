package volume

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
)

func allowedRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
}

// FuzzSanitizeDriverName checks the properties SanitizeDriverName
// guarantees for any input, including invalid UTF-8.
func FuzzSanitizeDriverName(f *testing.F) {
	for _, seed := range []string{
		"", "-", "X", "hostpath.csi.k8s.io", "csi/test", "s!a@n#i$t(i%z^e&d*",
		"ünïcode.drïver", "日本", "a😀b", "a\xff\xfeb", "\xff", "driver-", "--", "a-X",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, driver string) {
		got := SanitizeDriverName(driver)

		runes := utf8.RuneCountInString(driver) // invalid bytes count as one rune each
		if driver == "" {
			if got != "" {
				t.Fatalf("SanitizeDriverName(%q) = %q, want empty", driver, got)
			}
			return
		}
		for i, r := range got {
			if !allowedRune(r) {
				t.Fatalf("SanitizeDriverName(%q) = %q: disallowed rune %q at %d", driver, got, r, i)
			}
		}
		if strings.HasSuffix(got, "-") {
			t.Fatalf("SanitizeDriverName(%q) = %q ends with '-'", driver, got)
		}
		// The output is ASCII, so its byte length is its rune count.
		switch len(got) {
		case runes:
		case runes + 1:
			if !strings.HasSuffix(got, "-X") {
				t.Fatalf("SanitizeDriverName(%q) = %q: one character longer but no '-X' suffix", driver, got)
			}
		default:
			t.Fatalf("SanitizeDriverName(%q) = %q: %d characters for %d runes", driver, got, len(got), runes)
		}
		// Each rune maps to itself when allowed, else to '-'.
		i := 0
		for _, r := range driver {
			want := byte('-')
			if allowedRune(r) {
				want = byte(r)
			}
			if got[i] != want {
				t.Fatalf("SanitizeDriverName(%q) = %q: position %d is %q, want %q", driver, got, i, got[i], want)
			}
			i++
		}
		// An already sanitized name is a fixpoint, so the finalizer of an
		// object stays stable if its driver name were ever re-sanitized.
		if again := SanitizeDriverName(got); again != got {
			t.Fatalf("SanitizeDriverName is not idempotent: %q -> %q -> %q", driver, got, again)
		}
		if fin := FinalizerName(driver); fin != FinalizerPrefix+got {
			t.Fatalf("FinalizerName(%q) = %q", driver, fin)
		}
	})
}

// fuzzModes are the values access modes are drawn from: the four real
// modes and some garbage.
var fuzzModes = []corev1.PersistentVolumeAccessMode{
	corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod,
	"", "readwriteonce", "Bogus", "ReadWriteOnce ",
}

// modesFrom turns each byte into an access mode.
func modesFrom(data []byte) []corev1.PersistentVolumeAccessMode {
	if data == nil {
		return nil
	}
	modes := make([]corev1.PersistentVolumeAccessMode, 0, len(data))
	for _, b := range data {
		modes = append(modes, fuzzModes[int(b)%len(fuzzModes)])
	}
	return modes
}

func FuzzAccessMode(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add([]byte{0}, true)
	f.Add([]byte{1, 0}, false)
	f.Add([]byte{2, 1, 0}, true)
	f.Add([]byte{3}, true)
	f.Add([]byte{3, 0}, false)
	f.Add([]byte{4, 5, 6, 7}, false)
	f.Add([]byte{6, 0, 6}, true)
	f.Fuzz(func(t *testing.T, data []byte, snmw bool) {
		modes := modesFrom(data)
		mode, err := AccessMode(modes, snmw)
		if err != nil {
			if mode != csipb.VolumeCapability_AccessMode_UNKNOWN {
				t.Fatalf("AccessMode(%v, %v) = %v with error %v", modes, snmw, mode, err)
			}
			return
		}
		if mode == csipb.VolumeCapability_AccessMode_UNKNOWN {
			t.Fatalf("AccessMode(%v, %v) = UNKNOWN without error", modes, snmw)
		}
		has := func(m corev1.PersistentVolumeAccessMode) bool { return slices.Contains(modes, m) }
		// Cross-check against the table of upstream-behaviour.md §2.3.
		var want csipb.VolumeCapability_AccessMode_Mode
		switch {
		case has(corev1.ReadWriteOncePod):
			want = csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
			if snmw {
				want = csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
			}
		case has(corev1.ReadWriteMany):
			want = csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
		case has(corev1.ReadOnlyMany):
			want = csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
		case has(corev1.ReadWriteOnce):
			want = csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
			if snmw {
				want = csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
			}
		default:
			t.Fatalf("AccessMode(%v, %v) = %v for modes without a known one", modes, snmw, mode)
		}
		if mode != want {
			t.Fatalf("AccessMode(%v, %v) = %v, want %v", modes, snmw, mode, want)
		}
	})
}

func FuzzCapability(f *testing.F) {
	f.Add("", "", "", []byte{0}, "", false, false)
	f.Add("Block", "xfs", "ext4", []byte{2}, "noatime,ro", true, true)
	f.Add("Filesystem", "", "ext4", []byte{1}, "", true, false)
	f.Add("Other", "ext3", "", []byte{3, 0}, "a,,b", false, true)
	f.Add("", "", "", []byte{}, ",", true, true)
	f.Fuzz(func(t *testing.T, volumeMode, fsType, defaultFSType string, modeBytes []byte, mountOptions string, withCSI, snmw bool) {
		spec := &corev1.PersistentVolumeSpec{AccessModes: modesFrom(modeBytes)}
		if volumeMode != "" {
			vm := corev1.PersistentVolumeMode(volumeMode)
			spec.VolumeMode = &vm
		}
		if withCSI {
			spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h", FSType: fsType}
		}
		if mountOptions != "" {
			spec.MountOptions = strings.Split(mountOptions, ",")
		}
		orig := spec.DeepCopy()

		got, err := Capability(spec, defaultFSType, snmw)
		wantMode, modeErr := AccessMode(spec.AccessModes, snmw)
		if (err == nil) != (modeErr == nil) {
			t.Fatalf("Capability error %v, AccessMode error %v", err, modeErr)
		}
		if err != nil {
			if got != nil {
				t.Fatalf("Capability returned %v with error %v", got, err)
			}
			return
		}
		if got.GetAccessMode().GetMode() != wantMode {
			t.Fatalf("access mode %v, want %v", got.GetAccessMode().GetMode(), wantMode)
		}
		if volumeMode == string(corev1.PersistentVolumeBlock) {
			if got.GetBlock() == nil || got.GetMount() != nil {
				t.Fatalf("block spec gave %v", got)
			}
		} else {
			m := got.GetMount()
			if m == nil || got.GetBlock() != nil {
				t.Fatalf("non-block spec gave %v", got)
			}
			wantFS := defaultFSType
			if withCSI && fsType != "" {
				wantFS = fsType
			}
			if m.GetFsType() != wantFS {
				t.Fatalf("fsType %q, want %q", m.GetFsType(), wantFS)
			}
			if !slices.Equal(m.GetMountFlags(), spec.MountOptions) {
				t.Fatalf("mount flags %q, want %q", m.GetMountFlags(), spec.MountOptions)
			}
			if len(m.GetMountFlags()) > 0 {
				m.MountFlags[0] += "!"
			}
		}
		if !slices.Equal(spec.MountOptions, orig.MountOptions) || spec.CSI != nil && spec.CSI.FSType != orig.CSI.FSType {
			t.Fatalf("Capability or its result changed the spec: %+v, was %+v", spec, orig)
		}
	})
}
