package options

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// validate checks everything that can be checked without a server, in flag
// order, and returns every problem found.
func (o *Options) validate(set map[string]bool) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			add(fmt.Errorf("--%s=%s: must be greater than zero", name, d))
		}
	}

	// CSI.
	if strings.TrimSpace(o.CSIAddress) == "" {
		add(errors.New("--csi-address is required"))
	}
	positive("timeout", o.Timeout)
	positive("retry-interval-start", o.RetryIntervalStart)
	positive("retry-interval-max", o.RetryIntervalMax)
	if o.RetryIntervalStart > 0 && o.RetryIntervalMax > 0 && o.RetryIntervalStart > o.RetryIntervalMax {
		add(fmt.Errorf("--retry-interval-start=%s must not exceed --retry-interval-max=%s", o.RetryIntervalStart, o.RetryIntervalMax))
	}
	if o.WorkerThreads < 1 {
		add(errors.New("--worker-threads must be at least 1"))
	}
	// max_entries is an int32 in the CSI protobuf; reject what cannot be sent.
	if o.MaxEntries < 0 || o.MaxEntries > math.MaxInt32 {
		add(fmt.Errorf("--max-entries=%d: must be between 0 and %d", o.MaxEntries, math.MaxInt32))
	}
	positive("reconcile-sync", o.ReconcileSync)
	if o.MaxInflight < 0 {
		add(fmt.Errorf("--max-inflight=%d: must not be negative", o.MaxInflight))
	}
	if o.MaxInflightPerNode < 0 {
		add(fmt.Errorf("--max-inflight-per-node=%d: must not be negative", o.MaxInflightPerNode))
	}

	// Kubernetes client.
	if math.IsNaN(o.KubeAPIQPS) || math.IsInf(o.KubeAPIQPS, 0) || math.Abs(o.KubeAPIQPS) > math.MaxFloat32 {
		add(fmt.Errorf("--kube-api-qps=%v: must be a finite number", o.KubeAPIQPS))
	}
	if o.KubeAPIBurst < 0 || o.KubeAPIBurst > math.MaxInt32 {
		add(fmt.Errorf("--kube-api-burst=%d: must be between 0 and %d", o.KubeAPIBurst, math.MaxInt32))
	}
	positive("resync", o.Resync)

	// Leader election. The durations are checked only when leader election
	// is on, as the reference does, so a manifest that disables it with odd
	// leftovers still starts.
	if o.LeaderElection {
		add(validateLeaderElectionDurations(o.LeaderElectionLeaseDuration, o.LeaderElectionRenewDeadline, o.LeaderElectionRetryPeriod))
	}
	if o.LeaderElectionNamespace != "" {
		add(validateNamespace("--leader-election-namespace", o.LeaderElectionNamespace))
	}

	// HTTP.
	add(validateBindAddress("metrics-addr", o.MetricsAddr, true))
	add(validateBindAddress("health-probe-bind-address", o.HealthProbeAddr, true))
	add(validateBindAddress("pprof-bind-address", o.PprofAddr, true))
	if o.HTTPEndpoint != "" {
		add(validateBindAddress("http-endpoint", o.HTTPEndpoint, false))
	}
	if o.MetricsAddress != "" {
		add(validateBindAddress("metrics-address", o.MetricsAddress, false))
	}
	if o.HTTPEndpoint != "" && o.MetricsAddress != "" {
		add(errors.New("--http-endpoint and --metrics-address (its deprecated alias) cannot both be set"))
	}
	if _, single := o.SingleHTTPEndpoint(); !single && sameListener(o.MetricsAddr, o.HealthProbeAddr) {
		add(fmt.Errorf("--metrics-addr=%q and --health-probe-bind-address=%q would listen on the same port; use --http-endpoint for one shared server",
			o.MetricsAddr, o.HealthProbeAddr))
	}
	add(o.validateMetricsPath())

	// Logging.
	if o.Verbosity < 0 || o.Verbosity > MaxVerbosity {
		add(fmt.Errorf("--v=%d: must be between 0 and %d", o.Verbosity, MaxVerbosity))
	}
	// The two format flags write the same field, so a conflict is only
	// visible as "both given"; reject it rather than let the order decide.
	if set[flagLoggingFormat] && set[flagLogFormat] {
		add(fmt.Errorf("--%s and --%s are aliases; give only one", flagLoggingFormat, flagLogFormat))
	}
	return errs
}

// validateLeaderElectionDurations checks the leader-election timings at
// start-up, so that a bad combination fails with the flag names instead of
// inside the manager, or worse, runs: everything > 0; renew > 1.2 × retry
// (client-go's JitterFactor, which leaves room for a jittered retry before
// the deadline); and the rule that no standby can take over before the old
// leader has given up: lease ≥ renew + retry. The leader renews every
// retry period and gives up when a renewal has not succeeded within the
// renew deadline, that is up to retry + renew after its last renewal; a
// standby takes over one lease duration after it saw that renewal. client-
// go's own check (lease > renew) accepts 15 s / 12 s / 5 s, where a standby
// may lead for 2 s while the old leader still thinks it does.
func validateLeaderElectionDurations(lease, renew, retry time.Duration) error {
	const jitterFactor = 1.2
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"leader-election-lease-duration", lease},
		{"leader-election-renew-deadline", renew},
		{"leader-election-retry-period", retry},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s=%s: must be greater than zero", d.name, d.v))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if lease < renew+retry {
		errs = append(errs, fmt.Errorf("--leader-election-lease-duration=%s must be at least --leader-election-renew-deadline=%s + --leader-election-retry-period=%s = %s: "+
			"the leader gives up only a retry period plus the renew deadline after its last renewal, and a standby takes over one lease duration after it",
			lease, renew, retry, renew+retry))
	}
	if float64(renew) <= jitterFactor*float64(retry) {
		errs = append(errs, fmt.Errorf("--leader-election-renew-deadline=%s must be greater than 1.2 × --leader-election-retry-period=%s", renew, retry))
	}
	return errors.Join(errs...)
}

// validateBindAddress checks that addr is host:port with a numeric port, or
// "0" (off) when allowOff. Checking here turns a listen failure deep inside
// the manager into a start-up error that names the flag.
func validateBindAddress(name, addr string, allowOff bool) error {
	if allowOff && addr == "0" {
		return nil
	}
	want := "want host:port, e.g. :8080"
	if allowOff {
		want += `, or "0" to disable`
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s=%q: %s", name, addr, want)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--%s=%q: port %q must be a number from 0 to 65535", name, addr, port)
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("--%s=%q: host %q is neither an IP address nor a DNS name", name, addr, host)
	}
	return nil
}

// validHost reports whether host is an IP address (with an optional IPv6
// zone) or a DNS name.
func validHost(host string) bool {
	ip := host
	if i := strings.IndexByte(ip, '%'); i > 0 {
		ip = ip[:i]
	}
	if net.ParseIP(ip) != nil {
		return true
	}
	return len(validation.IsDNS1123Subdomain(strings.ToLower(host))) == 0
}

// sameListener reports whether two valid bind addresses would claim the same
// port: equal non-zero ports and hosts that are equal or a wildcard.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	na, errA := strconv.ParseUint(pa, 10, 16)
	nb, errB := strconv.ParseUint(pb, 10, 16)
	if errA != nil || errB != nil || na == 0 || na != nb {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// validateMetricsPath checks --metrics-path is an absolute URL path and, when
// the single server also serves health, that it does not shadow a health path.
func (o *Options) validateMetricsPath() error {
	p := o.MetricsPath
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n?#") {
		return fmt.Errorf("--metrics-path=%q: must be an absolute URL path such as /metrics", p)
	}
	if _, single := o.SingleHTTPEndpoint(); single && slices.Contains(healthPaths, p) {
		return fmt.Errorf("--metrics-path=%q: collides with a health endpoint of --http-endpoint", p)
	}
	return nil
}
