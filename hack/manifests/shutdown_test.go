package manifests

import (
	"os"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/options"
)

// TestGracePeriodCoversInFlightCalls checks that the kubelet never kills an
// attacher that still waits for a CSI call to return before it releases its
// Lease: terminationGracePeriodSeconds must exceed the attacher's graceful
// shutdown, which covers --timeout.
func TestGracePeriodCoversInFlightCalls(t *testing.T) {
	for _, path := range []string{"../../config/manager/manager.yaml", "../../config/samples/driver.yaml"} {
		t.Run(path, func(t *testing.T) {
			g := NewWithT(t)
			var d appsv1.Deployment
			load(t, path, &d)
			pod := d.Spec.Template.Spec
			i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "csi-attacher" })
			g.Expect(i).To(BeNumerically(">=", 0), "a container named csi-attacher")
			c := pod.Containers[i]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			opts, err := options.Parse(c.Args, func(k string) string { return env[k] }, os.ReadFile)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.TerminationGracePeriodSeconds).NotTo(BeNil())
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			g.Expect(grace).To(BeNumerically(">", controllers.ShutdownGracePeriod(opts.Timeout)),
				"terminationGracePeriodSeconds covers the graceful shutdown for --timeout=%s", opts.Timeout)
		})
	}
}
