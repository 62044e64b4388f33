package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// TrackedCounter returns the number of entries of each per-object map, by
// map name. It is called on every scrape, so it must be cheap and safe for
// concurrent use.
type TrackedCounter func() map[string]int

// SetTrackedSource sets the function the csi_attacher_tracked_objects gauges
// are read from on every scrape. With a nil f (the default) the gauges are
// not exported.
func (m *Metrics) SetTrackedSource(f TrackedCounter) {
	if m == nil {
		return
	}
	if f == nil {
		m.tracked.source.Store(nil)
		return
	}
	m.tracked.source.Store(&f)
}

// trackedCollector exports the map sizes from its TrackedCounter at scrape
// time.
type trackedCollector struct {
	desc   *prometheus.Desc
	source atomic.Pointer[TrackedCounter]
}

func (c *trackedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *trackedCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.source.Load()
	if f == nil {
		return
	}
	for name, n := range (*f)() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name)
	}
}
