package options

import (
	"bytes"
	"strings"
	"testing"

	"github.com/csi-attacher/csi-attacher/internal/logging"
)

// FuzzParse feeds one arbitrary argument, alone and after a valid
// --csi-address, through Parse and logging.New. Neither may panic, and a
// successful Parse must yield Options that logging.New accepts.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "-", "--", "-h", "--version", "stray",
		"--csi-address=/csi.sock", "--csi-address=",
		"--timeout=1m", "--timeout=-1s", "--timeout=abc", "--timeout=9223372036854775807ns",
		"--worker-threads=0", "--worker-threads=18446744073709551616",
		"--kube-api-qps=NaN", "--kube-api-qps=-Inf", "--kube-api-qps=1e39",
		"--feature-gates=ReleaseLeaderElectionOnExit=true,MutableCSINodeAllocatableCount=false",
		"--feature-gates=,,=,a=b=c", "--feature-gates==true",
		"--leader-election-labels=a:b,c:d", "--leader-election-labels=::,:",
		"--leader-election-retry-period=9223372036854775807ns",
		"--leader-election-namespace=kube-system",
		"--metrics-addr=[::1]:8080", "--metrics-addr=[fe80::1%eth0]:1", "--metrics-addr=:", "--metrics-addr=[",
		"--http-endpoint=:8080", "--metrics-address=0",
		"--metrics-path=/healthz",
		"-v=10", "-v=-2147483649", "--logging-format=json", "--log-format=",
		"--log-text-info-buffer-size=1e100000", "--log-json-info-buffer-size=-0",
		"--no-such-flag=1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, args := range [][]string{{arg}, {"--csi-address=/csi.sock", arg}} {
			o, err := Parse(args, nil, nil)
			if err != nil {
				if o != nil {
					t.Fatalf("Parse(%q) returned both Options and error %v", args, err)
				}
				if strings.TrimSpace(err.Error()) == "" {
					t.Fatalf("Parse(%q) returned an empty error", args)
				}
				continue
			}
			if o.ShowVersion {
				continue // validation is skipped on purpose
			}
			if _, err := logging.New(o.Logging(), &bytes.Buffer{}); err != nil {
				t.Fatalf("Parse(%q) accepted options logging.New rejects: %v", args, err)
			}
			_ = o.MetricsBindAddress()
			_ = o.HealthProbeBindAddress()
			_ = o.EffectiveQPS()
			_ = o.EffectiveBurst()
		}
	})
}
