package csi

import (
	"context"
	"time"

	"google.golang.org/grpc/connectivity"
)

// DefaultHealthInterval is the Probe period of the health monitor.
const DefaultHealthInterval = 5 * time.Second

// health is the last known condition of the driver; only transitions are
// logged, so an outage gives one line when it starts and one when it ends.
type health int

const (
	healthy health = iota
	notReady
	unreachable
	// accessDenied: unreachable because the socket's permissions keep us out.
	accessDenied
)

// HealthMonitor keeps Client.Ready current. It probes the driver
// periodically and reacts at once to the gRPC channel leaving the Ready
// state. It implements controller-runtime's manager.Runnable and
// LeaderElectionRunnable (it runs on every replica: /readyz needs it).
type HealthMonitor struct {
	c        *Client
	interval time.Duration
	state    health
	// recovered are called when the driver is ready again after an outage.
	recovered []func(context.Context)
}

// OnRecovered registers f, called with the monitor's context each time the
// driver is reachable and ready again after an outage, so that work that
// failed while it was gone is retried at once rather than at the end of
// its backoff. f runs on the monitor's goroutine and must not block. Call
// it before Start.
func (h *HealthMonitor) OnRecovered(f func(context.Context)) {
	h.recovered = append(h.recovered, f)
}

// HealthMonitor returns a monitor probing every interval (<= 0 means
// DefaultHealthInterval). Start it once.
func (c *Client) HealthMonitor(interval time.Duration) *HealthMonitor {
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	return &HealthMonitor{c: c, interval: interval}
}

// NeedLeaderElection is false: readiness matters on standby replicas too.
func (h *HealthMonitor) NeedLeaderElection() bool { return false }

// Start runs until ctx ends. It always returns nil: a driver outage is a
// state to report, not a reason to stop the manager.
func (h *HealthMonitor) Start(ctx context.Context) error {
	changed := make(chan struct{}, 1)
	go h.watchConnection(ctx, changed)
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-changed:
		}
		h.check(ctx)
	}
}

// watchConnection turns channel state changes into immediate checks, so
// /readyz drops within milliseconds of a lost socket instead of waiting for
// the next tick.
func (h *HealthMonitor) watchConnection(ctx context.Context, changed chan<- struct{}) {
	conn := h.c.conn
	state := conn.GetState()
	for conn.WaitForStateChange(ctx, state) {
		state = conn.GetState()
		switch state {
		case connectivity.Shutdown:
			h.c.ready.Store(false)
			return
		case connectivity.Ready:
		case connectivity.Idle:
			// A lost connection leaves the channel idle until the next
			// call; reconnect now so recovery is noticed without traffic.
			h.c.ready.Store(false)
			conn.Connect()
		default:
			h.c.ready.Store(false)
		}
		select {
		case changed <- struct{}{}:
		default: // a check is already pending
		}
	}
}

func (h *HealthMonitor) check(ctx context.Context) {
	ready, err := h.c.Probe(ctx)
	if ctx.Err() != nil {
		return // shutting down; the failed probe says nothing about the driver
	}
	addr := h.c.endpoint.String()
	switch {
	case err != nil:
		// A driver restarted as another user may have recreated its socket
		// with permissions that keep us out: say so, at error level.
		if denied := h.c.socketAccess(); denied != nil {
			h.c.setNotReady(denied)
			if h.state != accessDenied {
				h.c.log.Error(denied, "Lost connection to the CSI driver: the socket's permissions keep the attacher out",
					"address", addr, "identity", CurrentIdentity().String())
			}
			h.state = accessDenied
			return
		}
		h.c.setNotReady(err)
		if h.state != unreachable {
			h.c.log.Info("Lost connection to the CSI driver", "address", addr, "error", err.Error())
		}
		h.state = unreachable
	case !ready:
		h.c.setNotReady(errNotReady)
		if h.state != notReady {
			h.c.log.Info("The CSI driver reports it is not ready", "address", addr)
		}
		h.state = notReady
	default:
		h.c.notReady.Store(nil)
		h.c.ready.Store(true)
		if h.state != healthy {
			h.c.log.Info("The CSI driver is reachable and ready again", "address", addr)
			for _, f := range h.recovered {
				f(ctx)
			}
		}
		h.state = healthy
	}
}
