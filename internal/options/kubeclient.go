package options

// Automatic Kubernetes client limits, used when --kube-api-qps or
// --kube-api-burst is 0. They are deliberately far above client-go's 5/10:
// the API server's Priority and Fairness already shares capacity between
// clients, and a client-side token bucket would only make a large attach
// storm wait on the attacher itself.
const (
	AutoKubeAPIQPS   float32 = 1000
	AutoKubeAPIBurst int     = 2000
)

// EffectiveQPS returns the QPS to put into rest.Config: AutoKubeAPIQPS when
// --kube-api-qps is 0, otherwise the flag (negative disables client-side
// rate limiting in client-go).
func (o *Options) EffectiveQPS() float32 {
	if o.KubeAPIQPS == 0 {
		return AutoKubeAPIQPS
	}
	return float32(o.KubeAPIQPS)
}

// EffectiveBurst returns the burst to put into rest.Config: AutoKubeAPIBurst
// when --kube-api-burst is 0, otherwise the flag.
func (o *Options) EffectiveBurst() int {
	if o.KubeAPIBurst == 0 {
		return AutoKubeAPIBurst
	}
	return o.KubeAPIBurst
}
