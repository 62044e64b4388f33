package main

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/options"
)

// defaultPodGracePeriod is Kubernetes' terminationGracePeriodSeconds for a
// Pod that sets none, as csi-driver-host-path's controller does.
const defaultPodGracePeriod = 30 * time.Second

// leaseReleaseSlack is what the process needs after the graceful shutdown:
// releasing the Lease (one API write) and exiting.
const leaseReleaseSlack = 5 * time.Second

// TestDefaultShutdownFitsTheDefaultGracePeriod: with the reference's args
// (no --timeout), a CSI call in flight at SIGTERM ends, its result is
// written and the Lease released before the kubelet's SIGKILL in a Pod
// that keeps the default grace period.
func TestDefaultShutdownFitsTheDefaultGracePeriod(t *testing.T) {
	g := NewWithT(t)
	opts, err := options.Parse([]string{"--v=5", "--csi-address=/csi/csi.sock"}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	shutdown := controllers.ShutdownGracePeriod(opts.Timeout)
	g.Expect(shutdown).To(BeNumerically(">", opts.Timeout), "the shutdown waits for a whole call")
	g.Expect(shutdown+leaseReleaseSlack).To(BeNumerically("<=", defaultPodGracePeriod),
		"--timeout=%s gives a graceful shutdown of %s", opts.Timeout, shutdown)
}
