package options

import (
	"testing"

	. "github.com/onsi/gomega"
)

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
