package options

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

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
		{name: "max-inflight negative", args: []string{"--max-inflight=-1"}, want: []string{"--max-inflight=-1"}},
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

		{name: "lease not above renew", args: []string{"--leader-election", "--leader-election-lease-duration=10s"}, want: []string{"--leader-election-lease-duration=10s", "--leader-election-renew-deadline=10s"}},
		{name: "standby may take over before the leader gives up", args: []string{"--leader-election", "--leader-election-renew-deadline=12s"},
			want: []string{"--leader-election-lease-duration=15s must be at least --leader-election-renew-deadline=12s + --leader-election-retry-period=5s = 17s", "a standby takes over"}},
		{name: "renew not above retry", args: []string{"--leader-election", "--leader-election-retry-period=10s"}, want: []string{"--leader-election-renew-deadline=10s", "--leader-election-retry-period=10s"}},
		{name: "renew not above 1.2 x retry", args: []string{"--leader-election", "--leader-election-renew-deadline=6s", "--leader-election-retry-period=5s"}, want: []string{"--leader-election-renew-deadline=6s", "1.2"}},
		{name: "retry zero", args: []string{"--leader-election", "--leader-election-retry-period=0"}, want: []string{"--leader-election-retry-period=0s: must be greater than zero"}},
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
		{name: "metrics and health on one port", args: []string{"--metrics-addr=:8080", "--health-probe-bind-address=0.0.0.0:8080"}, want: []string{"--metrics-addr", "--health-probe-bind-address", "same port"}},
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

// TestLeaderElectionTimingRule: a standby takes over one lease duration
// after the leader's last renewal; the leader gives up up to a retry period
// plus the renew deadline after it. Combinations where the first comes
// before the second are refused.
func TestLeaderElectionTimingRule(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		lease, renew, retry time.Duration
		ok                  bool
	}{
		{15 * s, 10 * s, 5 * s, true}, // the defaults: exactly on the rule
		{137 * s, 107 * s, 26 * s, true},
		{60 * s, 30 * s, 10 * s, true},
		{15 * s, 12 * s, 5 * s, false},
		{15 * s, 11 * s, 5 * s, false},
		{20 * s, 18 * s, 3 * s, false},
		{10 * s, 10 * s, 5 * s, false}, // client-go refuses it too
		{16 * s, 11 * s, 5 * s, true},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.lease, tc.renew, tc.retry), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			err := validateLeaderElectionDurations(tc.lease, tc.renew, tc.retry)
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring("must be at least --leader-election-renew-deadline")))
		})
	}
}
