package leader

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

func TestLeaseName(t *testing.T) {
	g := NewWithT(t)
	// Shared with the reference attacher: it must not change.
	g.Expect(LeaseNamePrefix).To(Equal("external-attacher-leader-"))
	for driver, want := range map[string]string{
		"hostpath.csi.k8s.io": "external-attacher-leader-hostpath-csi-k8s-io",
		"csi/test":            "external-attacher-leader-csi-test",
		"trailing.":           "external-attacher-leader-trailing-X",
		"":                    "external-attacher-leader-",
	} {
		g.Expect(LeaseName(driver)).To(Equal(want), driver)
	}
}

// FuzzLeaseName: a Lease name is the prefix and the driver's name
// sanitized as in its finalizer, whatever the driver's name.
func FuzzLeaseName(f *testing.F) {
	for _, s := range []string{"hostpath.csi.k8s.io", "日本", "a\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, driver string) {
		if got, want := LeaseName(driver), LeaseNamePrefix+volume.SanitizeDriverName(driver); got != want {
			t.Fatalf("LeaseName(%q) = %q, want %q", driver, got, want)
		}
	})
}
