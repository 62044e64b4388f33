package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestEveryNamedHealthPathOnEveryLayout runs the attacher with each server
// layout (a probe server of its own; the reference's single
// --http-endpoint, with leader election as its manifests run it; its
// deprecated alias --metrics-address) and checks that every health path a
// document, an alert or a manifest names answers there, and is ok once the
// attacher is ready.
func TestEveryNamedHealthPathOnEveryLayout(t *testing.T) {
	startAPIServer(t)
	paths := namedHealthPaths(t)
	for _, layout := range []struct {
		name string
		// args adds the flags; server picks the address the health paths
		// are served on.
		args   func(single string) []string
		server func(p *attacherProcess, single string) string
	}{
		{"health-probe-bind-address", func(string) []string { return nil },
			func(p *attacherProcess, _ string) string { return p.health }},
		{"http-endpoint", func(single string) []string { return []string{"--http-endpoint=" + single, "--leader-election"} },
			func(_ *attacherProcess, single string) string { return single }},
		{"metrics-address", func(single string) []string { return []string{"--metrics-address=" + single} },
			func(_ *attacherProcess, single string) string { return single }},
	} {
		t.Run(layout.name, func(t *testing.T) {
			g := NewWithT(t)
			kubeconfig := attacherUser(t, "attacher-paths-"+layout.name, nil, true, nil)
			single := freeAddr(t)
			p := startAttacherCommand(t, kubeconfig, layout.args(single)...)
			server := layout.server(p, single)
			g.Eventually(func(g Gomega) {
				for path, files := range paths {
					code, body, err := getURL("http://" + server + path)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(code).To(Equal(http.StatusOK), "%s (named in %v): %s", path, files, body)
				}
			}).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Succeed())
			// A name that is no check is still a 404: the paths above are
			// served, not everything under /readyz.
			code, _, err := getURL("http://" + server + "/readyz/no-such-check")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusNotFound))
			if layout.name != "health-probe-bind-address" {
				code, body, err := getURL("http://" + server + "/metrics")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(code).To(Equal(http.StatusOK))
				g.Expect(strings.Contains(body, "csi_sidecar_operations_seconds")).To(BeTrue())
			}
		})
	}
}
