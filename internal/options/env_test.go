package options

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

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
			wantTO: 15 * time.Second, wantRetry: time.Second, wantProbe: 5 * time.Second,
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
			args:   []string{"--timeout=15s"},
			env:    map[string]string{EnvTimeout: "45s"},
			wantTO: 15 * time.Second, wantRetry: time.Second, wantProbe: 5 * time.Second,
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
