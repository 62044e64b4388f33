package options

import (
	"bytes"
	"errors"
	"flag"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestParseEachFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		check func(g Gomega, o *Options)
	}{
		{"csi-address", []string{"--csi-address=unix:///run/x.sock"}, func(g Gomega, o *Options) {
			g.Expect(o.CSIAddress).To(Equal("unix:///run/x.sock"))
		}},
		{"csi-address with space-separated value", []string{"--csi-address", "tcp://10.0.0.1:9000"}, func(g Gomega, o *Options) {
			g.Expect(o.CSIAddress).To(Equal("tcp://10.0.0.1:9000"))
		}},
		{"kubeconfig", []string{"--kubeconfig=/etc/kube/config"}, func(g Gomega, o *Options) {
			g.Expect(o.Kubeconfig).To(Equal("/etc/kube/config"))
		}},
		{"kube-api-qps", []string{"--kube-api-qps=42.5"}, func(g Gomega, o *Options) {
			g.Expect(o.KubeAPIQPS).To(Equal(42.5))
			g.Expect(o.EffectiveQPS()).To(Equal(float32(42.5)))
		}},
		{"kube-api-qps negative disables client limiting", []string{"--kube-api-qps=-1"}, func(g Gomega, o *Options) {
			g.Expect(o.EffectiveQPS()).To(Equal(float32(-1)))
		}},
		{"kube-api-burst", []string{"--kube-api-burst=77"}, func(g Gomega, o *Options) {
			g.Expect(o.KubeAPIBurst).To(Equal(77))
			g.Expect(o.EffectiveBurst()).To(Equal(77))
		}},
		{"resync", []string{"--resync=1h"}, func(g Gomega, o *Options) {
			g.Expect(o.Resync).To(Equal(time.Hour))
		}},
		{"timeout", []string{"--timeout=2m30s"}, func(g Gomega, o *Options) {
			g.Expect(o.Timeout).To(Equal(150 * time.Second))
		}},
		{"retry-interval-start", []string{"--retry-interval-start=250ms"}, func(g Gomega, o *Options) {
			g.Expect(o.RetryIntervalStart).To(Equal(250 * time.Millisecond))
		}},
		{"retry-interval-max", []string{"--retry-interval-max=5m"}, func(g Gomega, o *Options) {
			g.Expect(o.RetryIntervalMax).To(Equal(5 * time.Minute))
		}},
		{"retry-interval-start equal to max", []string{"--retry-interval-start=30s"}, func(g Gomega, o *Options) {
			g.Expect(o.RetryIntervalStart).To(Equal(o.RetryIntervalMax))
		}},
		{"worker-threads", []string{"--worker-threads=1"}, func(g Gomega, o *Options) {
			g.Expect(o.WorkerThreads).To(Equal(uint(1)))
		}},
		{"max-entries", []string{"--max-entries=500"}, func(g Gomega, o *Options) {
			g.Expect(o.MaxEntries).To(Equal(500))
		}},
		{"default-fstype", []string{"--default-fstype=ext4"}, func(g Gomega, o *Options) {
			g.Expect(o.DefaultFSType).To(Equal("ext4"))
		}},
		{"reconcile-sync", []string{"--reconcile-sync=5m"}, func(g Gomega, o *Options) {
			g.Expect(o.ReconcileSync).To(Equal(5 * time.Minute))
		}},
		{"max-grpc-log-length", []string{"--max-grpc-log-length=4096"}, func(g Gomega, o *Options) {
			g.Expect(o.MaxGRPCLogLength).To(Equal(4096))
		}},
		{"max-inflight", []string{"--max-inflight=64"}, func(g Gomega, o *Options) {
			g.Expect(o.MaxInflight).To(Equal(64))
		}},
		{"max-inflight-per-node", []string{"--max-inflight-per-node=4"}, func(g Gomega, o *Options) {
			g.Expect(o.MaxInflightPerNode).To(Equal(4))
		}},
		{"feature-gates", []string{"--feature-gates= ReleaseLeaderElectionOnExit=true , MutableCSINodeAllocatableCount=false"}, func(g Gomega, o *Options) {
			g.Expect(o.FeatureGates).To(Equal(map[string]bool{FeatureMutableCSINodeAllocatableCount: false, FeatureReleaseLeaderElectionOnExit: true}))
			g.Expect(o.FeatureEnabled(FeatureReleaseLeaderElectionOnExit)).To(BeTrue())
		}},
		{"feature-gates repeated flags merge", []string{"--feature-gates=ReleaseLeaderElectionOnExit=true", "--feature-gates=MutableCSINodeAllocatableCount=false"}, func(g Gomega, o *Options) {
			g.Expect(o.FeatureGates).To(Equal(map[string]bool{FeatureMutableCSINodeAllocatableCount: false, FeatureReleaseLeaderElectionOnExit: true}))
		}},
		{"feature-gates off", []string{"--feature-gates=ReleaseLeaderElectionOnExit=false,MutableCSINodeAllocatableCount=false"}, func(g Gomega, o *Options) {
			g.Expect(o.FeatureEnabled(FeatureReleaseLeaderElectionOnExit)).To(BeFalse())
			g.Expect(o.FeatureEnabled(FeatureMutableCSINodeAllocatableCount)).To(BeFalse())
		}},
		{"feature-gates empty keeps defaults", []string{"--feature-gates="}, func(g Gomega, o *Options) {
			g.Expect(o.FeatureGates).To(Equal(DefaultFeatureGates()))
		}},
		{"leader-election off", []string{"--leader-election=false"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElection).To(BeFalse())
		}},
		{"leader-election off skips duration checks", []string{"--leader-election=false", "--leader-election-renew-deadline=1h"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElectionRenewDeadline).To(Equal(time.Hour))
		}},
		{"leader-election-namespace", []string{"--leader-election-namespace=kube-system"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElectionNamespace).To(Equal("kube-system"))
			g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal("kube-system"))
		}},
		{"leader-election durations", []string{"--leader-election-lease-duration=60s", "--leader-election-renew-deadline=40s", "--leader-election-retry-period=2s"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElectionLeaseDuration).To(Equal(time.Minute))
			g.Expect(o.LeaderElectionRenewDeadline).To(Equal(40 * time.Second))
			g.Expect(o.LeaderElectionRetryPeriod).To(Equal(2 * time.Second))
		}},
		{"leader-election-labels", []string{"--leader-election-labels=app:csi-attacher, example.com/tier:storage,empty:"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElectionLabels).To(Equal(map[string]string{"app": "csi-attacher", "example.com/tier": "storage", "empty": ""}))
		}},
		{"leader-election-labels repeated flags merge", []string{"--leader-election-labels=a:1", "--leader-election-labels=b:2,a:3"}, func(g Gomega, o *Options) {
			g.Expect(o.LeaderElectionLabels).To(Equal(map[string]string{"a": "3", "b": "2"}))
		}},
		{"metrics-addr", []string{"--metrics-addr=127.0.0.1:9090"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsAddr).To(Equal("127.0.0.1:9090"))
			g.Expect(o.MetricsBindAddress()).To(Equal("127.0.0.1:9090"))
		}},
		{"metrics-addr off", []string{"--metrics-addr=0"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsBindAddress()).To(Equal("0"))
		}},
		{"health-probe-bind-address", []string{"--health-probe-bind-address=[::1]:9091"}, func(g Gomega, o *Options) {
			g.Expect(o.HealthProbeBindAddress()).To(Equal("[::1]:9091"))
		}},
		{"pprof-bind-address", []string{"--pprof-bind-address=127.0.0.1:6060"}, func(g Gomega, o *Options) {
			g.Expect(o.PprofAddr).To(Equal("127.0.0.1:6060"))
		}},
		{"health-probe-bind-address off", []string{"--health-probe-bind-address=0"}, func(g Gomega, o *Options) {
			g.Expect(o.HealthProbeBindAddress()).To(Equal("0"))
		}},
		{"same port on different hosts", []string{"--metrics-addr=10.0.0.1:8080", "--health-probe-bind-address=10.0.0.2:8080"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsAddr).To(Equal("10.0.0.1:8080"))
		}},
		{"both ports random", []string{"--metrics-addr=:0", "--health-probe-bind-address=:0"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsAddr).To(Equal(":0"))
		}},
		{"http-endpoint", []string{"--http-endpoint=:9808"}, func(g Gomega, o *Options) {
			g.Expect(o.HTTPEndpoint).To(Equal(":9808"))
			addr, ok := o.SingleHTTPEndpoint()
			g.Expect(ok).To(BeTrue())
			g.Expect(addr).To(Equal(":9808"))
			g.Expect(o.MetricsBindAddress()).To(Equal(":9808"))
			g.Expect(o.HealthProbeBindAddress()).To(Equal("0"))
		}},
		{"metrics-address (deprecated alias)", []string{"--metrics-address=localhost:9808"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsAddress).To(Equal("localhost:9808"))
			addr, ok := o.SingleHTTPEndpoint()
			g.Expect(ok).To(BeTrue())
			g.Expect(addr).To(Equal("localhost:9808"))
			g.Expect(o.MetricsBindAddress()).To(Equal("localhost:9808"))
			g.Expect(o.HealthProbeBindAddress()).To(Equal("0"))
		}},
		{"http-endpoint may reuse the default metrics port", []string{"--http-endpoint=:8080"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsBindAddress()).To(Equal(":8080"))
		}},
		{"metrics-path", []string{"--metrics-path=/custom/metrics"}, func(g Gomega, o *Options) {
			g.Expect(o.MetricsPath).To(Equal("/custom/metrics"))
		}},
		{"automaxprocs", []string{"--automaxprocs"}, func(g Gomega, o *Options) {
			g.Expect(o.AutoMaxProcs).To(BeTrue())
		}},
		{"v double dash", []string{"--v=7"}, func(g Gomega, o *Options) {
			g.Expect(o.Verbosity).To(Equal(7))
		}},
		{"v single dash, separate value", []string{"-v", "2"}, func(g Gomega, o *Options) {
			g.Expect(o.Verbosity).To(Equal(2))
		}},
		{"v zero", []string{"-v=0"}, func(g Gomega, o *Options) {
			g.Expect(o.Verbosity).To(Equal(0))
		}},
		{"vmodule accepted", []string{"--vmodule=foo=3"}, func(g Gomega, o *Options) {
			g.Expect(o.VModule).To(Equal("foo=3"))
		}},
		{"logging-format json", []string{"--logging-format=json"}, func(g Gomega, o *Options) {
			g.Expect(o.LogFormat).To(Equal(LogFormatJSON))
		}},
		{"log-format alias", []string{"--log-format=json"}, func(g Gomega, o *Options) {
			g.Expect(o.LogFormat).To(Equal(LogFormatJSON))
		}},
		{"log-format text", []string{"--log-format=text"}, func(g Gomega, o *Options) {
			g.Expect(o.LogFormat).To(Equal(LogFormatText))
		}},
		{"log-flush-frequency", []string{"--log-flush-frequency=10s"}, func(g Gomega, o *Options) {
			g.Expect(o.LogFlushFrequency).To(Equal(10 * time.Second))
		}},
		{"split streams", []string{"--log-text-split-stream", "--log-json-split-stream=true"}, func(g Gomega, o *Options) {
			g.Expect(o.LogTextSplitStream).To(BeTrue())
			g.Expect(o.LogJSONSplitStream).To(BeTrue())
		}},
		{"info buffer sizes", []string{"--log-text-info-buffer-size=64Ki", "--log-json-info-buffer-size=1M"}, func(g Gomega, o *Options) {
			g.Expect(o.LogTextInfoBufferSize).To(Equal("64Ki"))
			g.Expect(o.LogJSONInfoBufferSize).To(Equal("1M"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			args := append([]string{csiFlag}, tt.args...)
			o, err := Parse(args, nil, nil)
			g.Expect(err).NotTo(HaveOccurred())
			tt.check(g, o)
		})
	}
}

func TestParseHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		g := NewWithT(t)
		_, err := Parse([]string{arg}, nil, nil)
		g.Expect(errors.Is(err, flag.ErrHelp)).To(BeTrue(), arg)
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var buf bytes.Buffer
	Usage(&buf)
	out := buf.String()

	newFlagSet(newDefaults()).VisitAll(func(f *flag.Flag) {
		g.Expect(out).To(MatchRegexp(`(?m)^  -`+regexp.QuoteMeta(f.Name)+`( |$)`), f.Name)
	})
	for _, want := range []string{
		`(default 15s)`, `(default 1000)`, `(default 2000)`, `(default "0")`,
		`(default "/metrics")`, `(default 5)`, `(default -1)`, `(default text)`,
		"MutableCSINodeAllocatableCount=true",
		"-feature-gates key=bool", "-leader-election-labels key:value", "-logging-format format",
		EnvTimeout, EnvRetryIntervalStart, EnvProbeTimeout, EnvPodNamespace,
	} {
		g.Expect(out).To(ContainSubstring(want))
	}
	// The synopsis line names the required flag, as does the flag list.
	g.Expect(strings.Count(out, "-csi-address")).To(BeNumerically(">=", 2))
}
