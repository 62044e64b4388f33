package options

import (
	"io/fs"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

const csiFlag = "--csi-address=/csi/csi.sock"

// envOf returns a getenv over a fixed map, so tests never read the process
// environment and can run in parallel.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// filesOf returns a readFile over a fixed map; missing files give fs.ErrNotExist.
func filesOf(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)

	o, err := Parse([]string{csiFlag}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*o).To(Equal(Options{
		CSIAddress:                      "/csi/csi.sock",
		Timeout:                         15 * time.Second,
		ProbeTimeout:                    5 * time.Second,
		RetryIntervalStart:              time.Second,
		RetryIntervalMax:                30 * time.Second,
		WorkerThreads:                   1000,
		MaxEntries:                      0,
		ReconcileSync:                   time.Minute,
		MaxGRPCLogLength:                -1,
		MaxInflightPerNode:              0,
		MaxInflight:                     2000,
		FeatureGates:                    map[string]bool{FeatureMutableCSINodeAllocatableCount: true, FeatureReleaseLeaderElectionOnExit: true},
		Resync:                          10 * time.Minute,
		LeaderElection:                  false,
		LeaderElectionNamespaceResolved: "default",
		LeaderElectionLeaseDuration:     15 * time.Second,
		LeaderElectionRenewDeadline:     10 * time.Second,
		LeaderElectionRetryPeriod:       5 * time.Second,
		MetricsAddr:                     "0",
		HealthProbeAddr:                 "0",
		PprofAddr:                       "0",
		MetricsPath:                     "/metrics",
		Verbosity:                       5,
		LogFormat:                       LogFormatText,
		LogFlushFrequency:               5 * time.Second,
	}))
	g.Expect(o.EffectiveQPS()).To(Equal(float32(1000)))
	g.Expect(o.EffectiveBurst()).To(Equal(2000))
	g.Expect(o.MetricsBindAddress()).To(Equal("0"))
	g.Expect(o.HealthProbeBindAddress()).To(Equal("0"))
	g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal("default"))
	_, single := o.SingleHTTPEndpoint()
	g.Expect(single).To(BeFalse())
	g.Expect(o.FeatureEnabled(FeatureMutableCSINodeAllocatableCount)).To(BeTrue())
	g.Expect(o.FeatureEnabled(FeatureReleaseLeaderElectionOnExit)).To(BeTrue(), "on here, off in the reference")
}

// TestReferenceArgsChangeNothingInThePod parses the args of the reference
// attacher's container in csi-driver-host-path's controller Pod. Swapping
// the image must not change what that Pod does: no listener on a port
// another container of the Pod may use (the containers share one network
// namespace), no leader election the Pod has no Lease Role for, and a
// --timeout whose graceful shutdown fits Kubernetes' default 30 s grace
// period (checked against the shutdown in the main package's tests).
func TestReferenceArgsChangeNothingInThePod(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	o, err := Parse([]string{"--v=5", "--csi-address=/csi/csi.sock"}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.MetricsBindAddress()).To(Equal("0"), "no metrics listener unless asked")
	g.Expect(o.HealthProbeBindAddress()).To(Equal("0"), "no probe listener unless asked")
	g.Expect(o.PprofAddr).To(Equal("0"))
	_, single := o.SingleHTTPEndpoint()
	g.Expect(single).To(BeFalse())
	g.Expect(o.LeaderElection).To(BeFalse(), "the reference's default: a Pod without the Lease Role keeps attaching")
	g.Expect(o.Timeout).To(Equal(15*time.Second), "the reference's default")

	// Each listener opens when asked, by any of the flags that ask.
	for _, tc := range []struct {
		args            []string
		metrics, probes string
	}{
		{[]string{"--http-endpoint=:8080"}, ":8080", "0"},
		{[]string{"--metrics-address=:8080"}, ":8080", "0"},
		{[]string{"--metrics-addr=:8080"}, ":8080", "0"},
		{[]string{"--health-probe-bind-address=:8081"}, "0", ":8081"},
		{[]string{"--metrics-addr=:8080", "--health-probe-bind-address=:8081"}, ":8080", ":8081"},
	} {
		o, err := Parse(append([]string{csiFlag}, tc.args...), nil, nil)
		g.Expect(err).NotTo(HaveOccurred(), "%v", tc.args)
		g.Expect(o.MetricsBindAddress()).To(Equal(tc.metrics), "%v", tc.args)
		g.Expect(o.HealthProbeBindAddress()).To(Equal(tc.probes), "%v", tc.args)
	}
}

func TestParseVersionSkipsValidation(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// No --csi-address and an invalid value: --version must still work,
	// as `csi-attacher --version` is how people check what they run.
	o, err := Parse([]string{"--version", "--worker-threads=0"}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.ShowVersion).To(BeTrue())

	// Syntax errors are still reported.
	_, err = Parse([]string{"--version", "--timeout=abc"}, nil, nil)
	g.Expect(err).To(MatchError(ContainSubstring("-timeout")))
}

func TestHandBuiltOptionsFallBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// Other packages build Options by hand in tests; the accessors must
	// still give sensible answers.
	o := &Options{}
	g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal("default"))
	g.Expect(o.FeatureEnabled(FeatureMutableCSINodeAllocatableCount)).To(BeTrue())
	g.Expect(o.FeatureEnabled("NoSuchGate")).To(BeFalse())
	g.Expect(o.EffectiveQPS()).To(Equal(AutoKubeAPIQPS))
	g.Expect(o.EffectiveBurst()).To(Equal(AutoKubeAPIBurst))
	o.LeaderElectionNamespace = "ns"
	g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal("ns"))
}
