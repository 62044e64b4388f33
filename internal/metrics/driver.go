package metrics

import (
	"context"
	"time"
)

// SetDriverReady sets csi_attacher_driver_ready to 1 or 0.
func (m *Metrics) SetDriverReady(ready bool) {
	if m == nil {
		return
	}
	m.driverReady.Set(boolValue(ready))
}

// SetConnectionUp sets csi_attacher_csi_connection_up to 1 or 0. Each change
// from up to down counts one outage in csi_attacher_driver_outages_total;
// repeated calls with the same value, and a first call with false, count
// nothing.
func (m *Metrics) SetConnectionUp(up bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connWasUp && !up {
		m.outages.Inc()
	}
	m.connWasUp = up
	m.connUp.Set(boolValue(up))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// DriverHealth is what the driver gauges follow; the CSI client implements it.
type DriverHealth interface {
	// Ready is the last Probe's answer.
	Ready() bool
	// ConnectionUp tells whether the gRPC connection is established.
	ConnectionUp() bool
}

// DriverGauges keeps csi_attacher_driver_ready, csi_attacher_csi_connection_up
// and csi_attacher_driver_outages_total current. It is a manager.Runnable
// that runs on every replica, leader or not: a standby's driver matters too.
type DriverGauges struct {
	Metrics  *Metrics
	Driver   DriverHealth
	Interval time.Duration
}

// NeedLeaderElection is false: the gauges are per replica.
func (g DriverGauges) NeedLeaderElection() bool { return false }

// Start samples the driver's health until ctx ends.
func (g DriverGauges) Start(ctx context.Context) error {
	interval := g.Interval
	if interval <= 0 {
		interval = time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		g.Metrics.SetDriverReady(g.Driver.Ready())
		g.Metrics.SetConnectionUp(g.Driver.ConnectionUp())
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
