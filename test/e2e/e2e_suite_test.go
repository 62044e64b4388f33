//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/testbed/cluster"
)

// Sizes, from the environment (make e2e E2E_NODES=... E2E_PODS=...).
var (
	nodes = envInt("E2E_NODES", 10)
	pods  = envInt("E2E_PODS", 50)
)

var c *cluster.Cluster

// failed is set once a spec has failed, so the component logs are kept.
var failed bool

func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		panic(fmt.Sprintf("%s=%q: want a positive whole number", name, v))
	}
	return n
}

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyPollingInterval(cluster.PollInterval)
	// kube-controller-manager may take up to 4 minutes to create a
	// VolumeAttachment: a Pod scheduled before its informer saw the claim
	// Bound waits for the attach-detach controller's next full list of
	// Pods (every 3 minutes, checked every minute).
	SetDefaultEventuallyTimeout(6 * time.Minute)
	RunSpecs(t, "csi-attacher e2e suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	root, err := testbed.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	assets, err := testbed.AssetsDir("e2e")
	Expect(err).NotTo(HaveOccurred())
	kwok := os.Getenv("KWOK_VERSION")
	Expect(kwok).NotTo(BeEmpty(), "KWOK_VERSION is not set; run the suite with `make e2e`")
	c, err = cluster.Start(ctx, cluster.Options{
		Root: root, Assets: assets, KwokVersion: kwok, Nodes: nodes,
		// A real backend takes time per call; a second keeps calls in
		// flight long enough for the fault scenarios to strike mid-way.
		PublishLatency: time.Second, UnpublishLatency: time.Second,
		Log: GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		c.Stop()
		if failed || os.Getenv("E2E_KEEP_LOGS") != "" {
			fmt.Fprintf(GinkgoWriter, "component logs kept in %s\n", c.Dir)
			return
		}
		c.RemoveDir()
	})
}, NodeTimeout(20*time.Minute))

// Every spec ends with all components still running, except those it
// stopped on purpose; on failure the attachers' logs are shown.
var _ = JustAfterEach(func() {
	if c == nil {
		return
	}
	if CurrentSpecReport().Failed() {
		failed = true
		for _, name := range c.LogNames() {
			lines, _ := testbed.Tail(c.LogPath(name), 40)
			fmt.Fprintf(GinkgoWriter, "---- last lines of %s ----\n%s\n", name, strings.Join(lines, "\n"))
		}
		return
	}
	Expect(c.Exited()).To(BeEmpty(), "components exited during the spec")
})

// snapshot reads the cluster's state, failing the spec on an API error.
func snapshot(ctx context.Context, g Gomega) *cluster.Snapshot {
	s, err := c.Take(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	return s
}
