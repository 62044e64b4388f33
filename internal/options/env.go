package options

import (
	"fmt"
	"strings"
	"time"
)

// Environment variables read by Parse.
const (
	EnvTimeout            = "CSI_ATTACHER_TIMEOUT"
	EnvRetryIntervalStart = "CSI_ATTACHER_RETRY_INTERVAL_START"
	EnvProbeTimeout       = "CSI_PROBE_TIMEOUT"
	EnvPodNamespace       = "POD_NAMESPACE"
)

// applyEnv applies the environment variables. The two that shadow flags are
// read only when their flag is absent: the command line is the more
// specific setting, and a malformed variable that is not used should not stop
// the process.
func (o *Options) applyEnv(getenv func(string) string, set map[string]bool) []error {
	var errs []error
	envDuration := func(name string, dst *time.Duration) {
		raw := getenv(name)
		if raw == "" {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: invalid duration (want a Go duration such as 30s or 2m)", name, raw))
		case d <= 0:
			errs = append(errs, fmt.Errorf("%s=%q: must be greater than zero", name, raw))
		default:
			*dst = d
		}
	}
	if !set["timeout"] {
		envDuration(EnvTimeout, &o.Timeout)
	}
	if !set["retry-interval-start"] {
		envDuration(EnvRetryIntervalStart, &o.RetryIntervalStart)
	}
	envDuration(EnvProbeTimeout, &o.ProbeTimeout)
	return errs
}
