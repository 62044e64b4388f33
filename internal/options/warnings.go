package options

import (
	"fmt"
)

// collectWarnings records accepted settings that do not do what a user of
// the reference might expect.
func (o *Options) collectWarnings(getenv func(string) string, set map[string]bool) {
	warn := func(format string, args ...any) {
		o.Warnings = append(o.Warnings, fmt.Sprintf(format, args...))
	}
	if set["timeout"] && getenv(EnvTimeout) != "" {
		warn("%s is ignored because --timeout is set", EnvTimeout)
	}
	if set["retry-interval-start"] && getenv(EnvRetryIntervalStart) != "" {
		warn("%s is ignored because --retry-interval-start is set", EnvRetryIntervalStart)
	}
	if o.MetricsAddress != "" {
		warn("--metrics-address is deprecated; use --http-endpoint")
	}
	if _, single := o.SingleHTTPEndpoint(); single {
		for _, name := range []string{"metrics-addr", "health-probe-bind-address"} {
			if set[name] {
				warn("--%s is ignored because --http-endpoint (or --metrics-address) is set", name)
			}
		}
	}
	for _, name := range []string{
		"vmodule", "log-flush-frequency",
		"log-text-split-stream", "log-json-split-stream",
		"log-text-info-buffer-size", "log-json-info-buffer-size",
	} {
		if set[name] {
			warn("--%s is accepted for compatibility and ignored", name)
		}
	}
}
