package volume

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestSanitizeDriverName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		driver    string
		sanitized string
	}{
		{name: "dots", driver: "hostpath.csi.k8s.io", sanitized: "hostpath-csi-k8s-io"},
		{name: "slash", driver: "csi/test", sanitized: "csi-test"},
		{name: "upstream table: every special character, trailing one", driver: "s!a@n#i$t(i%z^e&d*", sanitized: "s-a-n-i-t-i-z-e-d-X"},
		{name: "already clean", driver: "Driver-Name-09", sanitized: "Driver-Name-09"},
		{name: "upper and lower case and digits are kept", driver: "AZaz09", sanitized: "AZaz09"},
		{name: "trailing dash in the input gets an X", driver: "driver-", sanitized: "driver-X"},
		{name: "trailing dot becomes dash then X", driver: "driver.", sanitized: "driver-X"},
		{name: "only a dash", driver: "-", sanitized: "-X"},
		{name: "leading special character is not trimmed", driver: ".driver", sanitized: "-driver"},
		{name: "underscore is replaced", driver: "my_driver", sanitized: "my-driver"},
		{name: "space and tab", driver: "a b\tc", sanitized: "a-b-c"},
		{name: "unicode letters are one dash per rune", driver: "ünïcode.drïver", sanitized: "-n-code-dr-ver"},
		{name: "multi-byte runes only", driver: "日本", sanitized: "--X"},
		{name: "emoji in the middle", driver: "a😀b", sanitized: "a-b"},
		{name: "invalid UTF-8 is one dash per byte", driver: "a\xff\xfeb", sanitized: "a--b"},
		{name: "empty stays empty", driver: "", sanitized: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(SanitizeDriverName(tt.driver)).To(Equal(tt.sanitized))
			g.Expect(FinalizerName(tt.driver)).To(Equal("external-attacher/" + tt.sanitized))
		})
	}
}

func TestNameConstants(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// These strings are shared with the reference attacher and must not change.
	g.Expect(FinalizerPrefix).To(Equal("external-attacher/"))
	g.Expect(NodeIDAnnotation).To(Equal("csi.alpha.kubernetes.io/node-id"))
	g.Expect(MigratedToAnnotation).To(Equal("pv.kubernetes.io/migrated-to"))

	g.Expect(FinalizerName("csi/test")).To(Equal("external-attacher/csi-test"))
	g.Expect(FinalizerName("hostpath.csi.k8s.io")).To(Equal("external-attacher/hostpath-csi-k8s-io"))
}
