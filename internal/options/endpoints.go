package options

// Paths served by the single diagnostics server of --http-endpoint. The
// metrics path must not collide with them.
var healthPaths = []string{"/healthz", "/readyz", "/healthz/leader-election"}

// SingleHTTPEndpoint returns the address of the reference-style single
// diagnostics server (--http-endpoint, or its deprecated alias
// --metrics-address) and whether one is configured. When ok, that server
// must serve metrics, /healthz, /readyz and /healthz/leader-election.
func (o *Options) SingleHTTPEndpoint() (addr string, ok bool) {
	if o.HTTPEndpoint != "" {
		return o.HTTPEndpoint, true
	}
	if o.MetricsAddress != "" {
		return o.MetricsAddress, true
	}
	return "", false
}

// MetricsBindAddress returns metricsserver.Options.BindAddress for the
// Manager: the single endpoint when configured, else --metrics-addr ("0" = off).
func (o *Options) MetricsBindAddress() string {
	if addr, ok := o.SingleHTTPEndpoint(); ok {
		return addr
	}
	return o.MetricsAddr
}

// HealthProbeBindAddress returns manager.Options.HealthProbeBindAddress: "0"
// when a single endpoint is configured (the caller then mounts the health
// handlers on the metrics server through metricsserver.Options.ExtraHandlers),
// else --health-probe-bind-address.
func (o *Options) HealthProbeBindAddress() string {
	if _, ok := o.SingleHTTPEndpoint(); ok {
		return "0"
	}
	return o.HealthProbeAddr
}
