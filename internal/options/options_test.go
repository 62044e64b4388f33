package options

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"regexp"
	"strings"
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
		Timeout:                         time.Minute,
		ProbeTimeout:                    5 * time.Second,
		RetryIntervalStart:              time.Second,
		RetryIntervalMax:                30 * time.Second,
		WorkerThreads:                   100,
		MaxEntries:                      0,
		ReconcileSync:                   time.Minute,
		MaxGRPCLogLength:                -1,
		MaxInflightPerNode:              0,
		FeatureGates:                    map[string]bool{FeatureMutableCSINodeAllocatableCount: true, FeatureReleaseLeaderElectionOnExit: true},
		Resync:                          10 * time.Minute,
		LeaderElection:                  true,
		LeaderElectionNamespaceResolved: "default",
		LeaderElectionLeaseDuration:     15 * time.Second,
		LeaderElectionRenewDeadline:     10 * time.Second,
		LeaderElectionRetryPeriod:       5 * time.Second,
		MetricsAddr:                     ":8080",
		HealthProbeAddr:                 ":8081",
		PprofAddr:                       "0",
		MetricsPath:                     "/metrics",
		Verbosity:                       5,
		LogFormat:                       LogFormatText,
		LogFlushFrequency:               5 * time.Second,
	}))
	g.Expect(o.EffectiveQPS()).To(Equal(float32(1000)))
	g.Expect(o.EffectiveBurst()).To(Equal(2000))
	g.Expect(o.MetricsBindAddress()).To(Equal(":8080"))
	g.Expect(o.HealthProbeBindAddress()).To(Equal(":8081"))
	g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal("default"))
	_, single := o.SingleHTTPEndpoint()
	g.Expect(single).To(BeFalse())
	g.Expect(o.FeatureEnabled(FeatureMutableCSINodeAllocatableCount)).To(BeTrue())
	g.Expect(o.FeatureEnabled(FeatureReleaseLeaderElectionOnExit)).To(BeTrue(), "on here, off in the reference")
}

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

func TestParseEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantTO    time.Duration
		wantRetry time.Duration
		wantProbe time.Duration
		wantWarn  []string
	}{
		{
			name:   "no env, no flags: defaults",
			wantTO: time.Minute, wantRetry: time.Second, wantProbe: 5 * time.Second,
		},
		{
			name:   "env applies when the flags are absent",
			env:    map[string]string{EnvTimeout: "45s", EnvRetryIntervalStart: "3s", EnvProbeTimeout: "20s"},
			wantTO: 45 * time.Second, wantRetry: 3 * time.Second, wantProbe: 20 * time.Second,
		},
		{
			name:   "env values are trimmed",
			env:    map[string]string{EnvTimeout: " 2m\n"},
			wantTO: 2 * time.Minute, wantRetry: time.Second, wantProbe: 5 * time.Second,
		},
		{
			name:   "flags beat env",
			args:   []string{"--timeout=10s", "--retry-interval-start=500ms"},
			env:    map[string]string{EnvTimeout: "45s", EnvRetryIntervalStart: "3s"},
			wantTO: 10 * time.Second, wantRetry: 500 * time.Millisecond, wantProbe: 5 * time.Second,
			wantWarn: []string{
				"CSI_ATTACHER_TIMEOUT is ignored because --timeout is set",
				"CSI_ATTACHER_RETRY_INTERVAL_START is ignored because --retry-interval-start is set",
			},
		},
		{
			name:   "flag set to its default value still beats env",
			args:   []string{"--timeout=1m"},
			env:    map[string]string{EnvTimeout: "45s"},
			wantTO: time.Minute, wantRetry: time.Second, wantProbe: 5 * time.Second,
			wantWarn: []string{"CSI_ATTACHER_TIMEOUT is ignored because --timeout is set"},
		},
		{
			name:   "a malformed env var shadowed by its flag is not an error",
			args:   []string{"--timeout=10s"},
			env:    map[string]string{EnvTimeout: "abc"},
			wantTO: 10 * time.Second, wantRetry: time.Second, wantProbe: 5 * time.Second,
			wantWarn: []string{"CSI_ATTACHER_TIMEOUT is ignored because --timeout is set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			o, err := Parse(append([]string{csiFlag}, tt.args...), envOf(tt.env), nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(o.Timeout).To(Equal(tt.wantTO))
			g.Expect(o.RetryIntervalStart).To(Equal(tt.wantRetry))
			g.Expect(o.ProbeTimeout).To(Equal(tt.wantProbe))
			if tt.wantWarn == nil {
				g.Expect(o.Warnings).To(BeEmpty())
			} else {
				g.Expect(o.Warnings).To(Equal(tt.wantWarn))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string // csiFlag is prepended unless noCSI
		env  map[string]string
		// want are substrings of the error message; the first names the
		// flag or variable at fault.
		want  []string
		noCSI bool
	}{
		{name: "missing csi-address", noCSI: true, want: []string{"--csi-address is required"}},
		{name: "empty csi-address", noCSI: true, args: []string{"--csi-address="}, want: []string{"--csi-address is required"}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: []string{"no-such-flag", "not defined"}},
		{name: "positional argument", args: []string{"stray"}, want: []string{`unexpected argument "stray"`}},
		{name: "flag hidden after a positional argument", args: []string{"1m", "--v=3"}, want: []string{`unexpected argument "1m"`}},
		{name: "flag without value", args: []string{"--timeout"}, want: []string{"timeout", "needs an argument"}},

		{name: "timeout bad duration", args: []string{"--timeout=abc"}, want: []string{"-timeout", `"abc"`}},
		{name: "timeout zero", args: []string{"--timeout=0"}, want: []string{"--timeout=0s: must be greater than zero"}},
		{name: "timeout negative", args: []string{"--timeout=-5s"}, want: []string{"--timeout=-5s"}},
		{name: "retry-interval-start zero", args: []string{"--retry-interval-start=0s"}, want: []string{"--retry-interval-start=0s"}},
		{name: "retry-interval-max bad", args: []string{"--retry-interval-max=forever"}, want: []string{"-retry-interval-max"}},
		{name: "retry-interval-max zero", args: []string{"--retry-interval-max=0"}, want: []string{"--retry-interval-max=0s"}},
		{name: "retry start above max", args: []string{"--retry-interval-start=1m", "--retry-interval-max=10s"}, want: []string{"--retry-interval-start=1m0s", "--retry-interval-max=10s"}},
		{name: "resync zero", args: []string{"--resync=0"}, want: []string{"--resync=0s"}},
		{name: "resync bad", args: []string{"--resync=10"}, want: []string{"-resync"}},
		{name: "reconcile-sync zero", args: []string{"--reconcile-sync=0s"}, want: []string{"--reconcile-sync=0s"}},
		{name: "worker-threads zero", args: []string{"--worker-threads=0"}, want: []string{"--worker-threads must be at least 1"}},
		{name: "worker-threads negative", args: []string{"--worker-threads=-1"}, want: []string{"-worker-threads", `"-1"`}},
		{name: "worker-threads not a number", args: []string{"--worker-threads=many"}, want: []string{"-worker-threads"}},
		{name: "max-entries negative", args: []string{"--max-entries=-1"}, want: []string{"--max-entries=-1"}},
		{name: "max-entries above int32", args: []string{"--max-entries=2147483648"}, want: []string{"--max-entries=2147483648"}},
		{name: "max-inflight-per-node negative", args: []string{"--max-inflight-per-node=-2"}, want: []string{"--max-inflight-per-node=-2"}},
		{name: "max-grpc-log-length bad", args: []string{"--max-grpc-log-length=x"}, want: []string{"-max-grpc-log-length"}},
		{name: "kube-api-qps not a number", args: []string{"--kube-api-qps=fast"}, want: []string{"-kube-api-qps"}},
		{name: "kube-api-qps NaN", args: []string{"--kube-api-qps=NaN"}, want: []string{"--kube-api-qps=NaN"}},
		{name: "kube-api-qps Inf", args: []string{"--kube-api-qps=+Inf"}, want: []string{"--kube-api-qps"}},
		{name: "kube-api-qps beyond float32", args: []string{"--kube-api-qps=1e300"}, want: []string{"--kube-api-qps"}},
		{name: "kube-api-burst negative", args: []string{"--kube-api-burst=-1"}, want: []string{"--kube-api-burst=-1"}},

		{name: "feature gate unknown", args: []string{"--feature-gates=Foo=true"}, want: []string{"-feature-gates", `unknown feature gate "Foo"`}},
		// Gates the reference takes from its Kubernetes libraries.
		{name: "feature gate of the reference's libraries", args: []string{"--feature-gates=LoggingBetaOptions=true"},
			want: []string{"-feature-gates", `unknown feature gate "LoggingBetaOptions": the attacher has only MutableCSINodeAllocatableCount and ReleaseLeaderElectionOnExit`, "remove it"}},
		{name: "feature gate AllAlpha", args: []string{"--feature-gates=MutableCSINodeAllocatableCount=true,AllAlpha=true"},
			want: []string{"-feature-gates", `unknown feature gate "AllAlpha"`}},
		{name: "feature gate without value", args: []string{"--feature-gates=ReleaseLeaderElectionOnExit"}, want: []string{"-feature-gates", "missing =true or =false"}},
		{name: "feature gate bad bool", args: []string{"--feature-gates=ReleaseLeaderElectionOnExit=maybe"}, want: []string{"-feature-gates", `"maybe"`}},
		{name: "feature gate wrong separator", args: []string{"--feature-gates=ReleaseLeaderElectionOnExit:true"}, want: []string{"-feature-gates"}},

		{name: "lease not above renew", args: []string{"--leader-election-lease-duration=10s"}, want: []string{"--leader-election-lease-duration=10s", "--leader-election-renew-deadline=10s"}},
		{name: "renew not above retry", args: []string{"--leader-election-retry-period=10s"}, want: []string{"--leader-election-renew-deadline=10s", "--leader-election-retry-period=10s"}},
		{name: "renew not above 1.2 x retry", args: []string{"--leader-election-renew-deadline=6s", "--leader-election-retry-period=5s"}, want: []string{"--leader-election-renew-deadline=6s", "1.2"}},
		{name: "retry zero", args: []string{"--leader-election-retry-period=0"}, want: []string{"--leader-election-retry-period=0s: must be greater than zero"}},
		{name: "lease bad", args: []string{"--leader-election-lease-duration=long"}, want: []string{"-leader-election-lease-duration"}},
		{name: "leader-election not a bool", args: []string{"--leader-election=yes"}, want: []string{"-leader-election"}},
		{name: "leader-election-namespace invalid", args: []string{"--leader-election-namespace=Kube_System"}, want: []string{"--leader-election-namespace", "Kube_System"}},
		{name: "labels without colon", args: []string{"--leader-election-labels=novalue"}, want: []string{"-leader-election-labels", `"novalue"`}},
		{name: "labels with two colons", args: []string{"--leader-election-labels=a:b:c"}, want: []string{"-leader-election-labels", `"a:b:c"`}},
		{name: "labels empty key", args: []string{"--leader-election-labels=:v"}, want: []string{"-leader-election-labels", "label key"}},
		{name: "labels invalid value", args: []string{"--leader-election-labels=k:not valid"}, want: []string{"-leader-election-labels", "label value"}},

		{name: "metrics-addr without port", args: []string{"--metrics-addr=localhost"}, want: []string{`--metrics-addr="localhost"`}},
		{name: "metrics-addr port not numeric", args: []string{"--metrics-addr=:http"}, want: []string{`--metrics-addr=":http"`, "port"}},
		{name: "metrics-addr port too large", args: []string{"--metrics-addr=:65536"}, want: []string{"--metrics-addr", "65536"}},
		{name: "metrics-addr empty", args: []string{"--metrics-addr="}, want: []string{`--metrics-addr=""`}},
		{name: "metrics-addr bad host", args: []string{"--metrics-addr=bad host:80"}, want: []string{"--metrics-addr", "host"}},
		{name: "health-probe-bind-address bad", args: []string{"--health-probe-bind-address=8081"}, want: []string{`--health-probe-bind-address="8081"`}},
		{name: "pprof-bind-address bad", args: []string{"--pprof-bind-address=6060"}, want: []string{`--pprof-bind-address="6060"`}},
		{name: "metrics and health on one port", args: []string{"--health-probe-bind-address=0.0.0.0:8080"}, want: []string{"--metrics-addr", "--health-probe-bind-address", "same port"}},
		{name: "http-endpoint bad", args: []string{"--http-endpoint=nonsense"}, want: []string{`--http-endpoint="nonsense"`}},
		{name: "http-endpoint cannot be 0", args: []string{"--http-endpoint=0"}, want: []string{`--http-endpoint="0"`}},
		{name: "metrics-address bad", args: []string{"--metrics-address=:99999"}, want: []string{"--metrics-address"}},
		{name: "http-endpoint and metrics-address", args: []string{"--http-endpoint=:8080", "--metrics-address=:8080"}, want: []string{"--http-endpoint and --metrics-address"}},
		{name: "metrics-path relative", args: []string{"--metrics-path=metrics"}, want: []string{`--metrics-path="metrics"`}},
		{name: "metrics-path shadows healthz", args: []string{"--http-endpoint=:9808", "--metrics-path=/healthz"}, want: []string{`--metrics-path="/healthz"`}},

		{name: "v too high", args: []string{"--v=11"}, want: []string{"--v=11"}},
		{name: "v negative", args: []string{"-v=-1"}, want: []string{"--v=-1"}},
		{name: "v not a number", args: []string{"-v=debug"}, want: []string{"-v", `"debug"`}},
		{name: "logging-format unknown", args: []string{"--logging-format=xml"}, want: []string{"-logging-format", `"xml"`}},
		{name: "log-format unknown", args: []string{"--log-format=JSON"}, want: []string{"-log-format", `"JSON"`}},
		{name: "both log format aliases", args: []string{"--log-format=json", "--logging-format=json"}, want: []string{"--logging-format and --log-format"}},
		{name: "log-flush-frequency bad", args: []string{"--log-flush-frequency=often"}, want: []string{"-log-flush-frequency"}},
		{name: "log-text-split-stream not a bool", args: []string{"--log-text-split-stream=sometimes"}, want: []string{"-log-text-split-stream"}},
		{name: "log-text-info-buffer-size bad", args: []string{"--log-text-info-buffer-size=lots"}, want: []string{"-log-text-info-buffer-size", "quantity"}},
		{name: "log-json-info-buffer-size negative", args: []string{"--log-json-info-buffer-size=-1Ki"}, want: []string{"-log-json-info-buffer-size", "negative"}},
		{name: "automaxprocs not a bool", args: []string{"--automaxprocs=2"}, want: []string{"-automaxprocs"}},

		{name: "env timeout malformed", env: map[string]string{EnvTimeout: "abc"}, want: []string{`CSI_ATTACHER_TIMEOUT="abc": invalid duration`}},
		{name: "env timeout zero", env: map[string]string{EnvTimeout: "0s"}, want: []string{`CSI_ATTACHER_TIMEOUT="0s": must be greater than zero`}},
		{name: "env retry start malformed", env: map[string]string{EnvRetryIntervalStart: "1"}, want: []string{`CSI_ATTACHER_RETRY_INTERVAL_START="1": invalid duration`}},
		{name: "env retry start above max", env: map[string]string{EnvRetryIntervalStart: "1m"}, want: []string{"--retry-interval-start=1m0s", "--retry-interval-max=30s"}},
		{name: "env probe timeout malformed", env: map[string]string{EnvProbeTimeout: "5 seconds"}, want: []string{`CSI_PROBE_TIMEOUT="5 seconds": invalid duration`}},
		{name: "env probe timeout negative", env: map[string]string{EnvProbeTimeout: "-1s"}, want: []string{`CSI_PROBE_TIMEOUT="-1s"`}},
		{name: "POD_NAMESPACE invalid", env: map[string]string{EnvPodNamespace: "Not/A/Namespace"}, want: []string{"POD_NAMESPACE", "Not/A/Namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			args := tt.args
			if !tt.noCSI {
				args = append([]string{csiFlag}, args...)
			}
			o, err := Parse(args, envOf(tt.env), nil)
			g.Expect(err).To(HaveOccurred())
			g.Expect(o).To(BeNil())
			for _, w := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func TestParseReportsEveryValidationError(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	_, err := Parse([]string{"--worker-threads=0", "--timeout=0"}, envOf(map[string]string{EnvProbeTimeout: "x"}), nil)
	g.Expect(err).To(HaveOccurred())
	msg := err.Error()
	for _, want := range []string{"--csi-address is required", "--worker-threads", "--timeout", EnvProbeTimeout} {
		g.Expect(msg).To(ContainSubstring(want))
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

func TestLeaderElectionNamespaceResolution(t *testing.T) {
	t.Parallel()
	const saFile = ServiceAccountNamespaceFile
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		files map[string]string
		want  string
	}{
		{name: "flag first", args: []string{"--leader-election-namespace=from-flag"},
			env: map[string]string{EnvPodNamespace: "from-env"}, files: map[string]string{saFile: "from-file"}, want: "from-flag"},
		{name: "then POD_NAMESPACE", env: map[string]string{EnvPodNamespace: "from-env"},
			files: map[string]string{saFile: "from-file"}, want: "from-env"},
		{name: "then the service-account file, trimmed", files: map[string]string{saFile: " from-file\n"}, want: "from-file"},
		{name: "blank POD_NAMESPACE falls through", env: map[string]string{EnvPodNamespace: "  "},
			files: map[string]string{saFile: "from-file"}, want: "from-file"},
		{name: "empty file falls through", files: map[string]string{saFile: "\n"}, want: "default"},
		{name: "then default", want: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			o, err := Parse(append([]string{csiFlag}, tt.args...), envOf(tt.env), filesOf(tt.files))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(o.LeaderElectionNamespaceResolved).To(Equal(tt.want))
			g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal(tt.want))
		})
	}

	t.Run("invalid namespace in the file", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		_, err := Parse([]string{csiFlag}, nil, filesOf(map[string]string{saFile: "Bad_NS"}))
		g.Expect(err).To(MatchError(ContainSubstring(saFile)))
	})
	t.Run("read errors other than not-exist fall through too", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		o, err := Parse([]string{csiFlag}, nil, func(string) ([]byte, error) { return nil, fs.ErrPermission })
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(o.LeaderElectionNamespaceResolved).To(Equal("default"))
	})
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

func TestParseWarnings(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	o, err := Parse([]string{csiFlag,
		"--metrics-address=:9808", "--metrics-addr=:8080", "--health-probe-bind-address=:8081",
		"--vmodule=x=1", "--log-flush-frequency=1s", "--log-text-split-stream", "--log-json-split-stream",
		"--log-text-info-buffer-size=1Ki", "--log-json-info-buffer-size=1Ki",
	}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.Warnings).To(ConsistOf(
		"--metrics-address is deprecated; use --http-endpoint",
		"--metrics-addr is ignored because --http-endpoint (or --metrics-address) is set",
		"--health-probe-bind-address is ignored because --http-endpoint (or --metrics-address) is set",
		"--vmodule is accepted for compatibility and ignored",
		"--log-flush-frequency is accepted for compatibility and ignored",
		"--log-text-split-stream is accepted for compatibility and ignored",
		"--log-json-split-stream is accepted for compatibility and ignored",
		"--log-text-info-buffer-size is accepted for compatibility and ignored",
		"--log-json-info-buffer-size is accepted for compatibility and ignored",
	))
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
		`(default 1m0s)`, `(default 100)`, `(default ":8080")`, `(default ":8081")`,
		`(default "/metrics")`, `(default true)`, `(default 5)`, `(default -1)`, `(default text)`,
		"MutableCSINodeAllocatableCount=true",
		"-feature-gates key=bool", "-leader-election-labels key:value", "-logging-format format",
		EnvTimeout, EnvRetryIntervalStart, EnvProbeTimeout, EnvPodNamespace,
	} {
		g.Expect(out).To(ContainSubstring(want))
	}
	// The synopsis line names the required flag, as does the flag list.
	g.Expect(strings.Count(out, "-csi-address")).To(BeNumerically(">=", 2))
}
