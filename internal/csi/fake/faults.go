package fake

import (
	"time"

	"google.golang.org/grpc/codes"
)

// key selects a method, optionally narrowed to one volume ("" = any).
type key struct {
	method   string
	volumeID string
}

// fault is one injected error.
type fault struct {
	code      codes.Code
	message   string // "" for the default message naming the call
	remaining int    // <0: until cleared
}

// InjectError makes the next `times` calls of method (for volumeID, or any
// volume when volumeID is "") fail with code before any state change.
// times <= 0 means until ClearFaults. A later injection for the same method
// and volume replaces the earlier one.
func (d *Driver) InjectError(method, volumeID string, code codes.Code, times int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faultsBefore[key{method, volumeID}] = newFault(code, times)
}

// InjectErrorAfter is like InjectError, but the call first takes effect
// (the volume is published or unpublished) and only then fails: it
// simulates a driver that attached the volume but returned an error or a
// timeout.
func (d *Driver) InjectErrorAfter(method, volumeID string, code codes.Code, times int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faultsAfter[key{method, volumeID}] = newFault(code, times)
}

// InjectErrorMessage is like InjectError with the driver's own message,
// e.g. a long one.
func (d *Driver) InjectErrorMessage(method, volumeID string, code codes.Code, message string, times int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := newFault(code, times)
	f.message = message
	d.faultsBefore[key{method, volumeID}] = f
}

// InjectNodeError makes the next `times` calls of method for nodeID fail
// with code and message before any state change, whatever the volume: a
// node at its attach limit answers ControllerPublishVolume with
// ResourceExhausted. times <= 0 means until ClearNodeError or ClearFaults.
// It is checked after the call's latency and before the volume faults.
func (d *Driver) InjectNodeError(method, nodeID string, code codes.Code, message string, times int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := newFault(code, times)
	f.message = message
	d.nodeFaults[key{method, nodeID}] = f
}

// ClearNodeError removes the error injected for method on nodeID.
func (d *Driver) ClearNodeError(method, nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.nodeFaults, key{method, nodeID})
}

func newFault(code codes.Code, times int) *fault {
	if times <= 0 {
		times = -1
	}
	return &fault{code: code, remaining: times}
}

// SetLatency delays every call of method (for volumeID, or any volume when
// volumeID is "") by latency before it is handled. The delay ends early
// with DeadlineExceeded or Canceled when the caller's context ends; the call
// then has no effect. A volume-specific latency wins over the any-volume
// one. Zero removes the setting.
func (d *Driver) SetLatency(method, volumeID string, latency time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if latency <= 0 {
		delete(d.latency, key{method, volumeID})
		return
	}
	d.latency[key{method, volumeID}] = latency
}

// ClearFaults removes every injected error and latency and makes the
// driver ready again. Publications and the call record are kept.
func (d *Driver) ClearFaults() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.faultsBefore)
	clear(d.faultsAfter)
	clear(d.nodeFaults)
	clear(d.latency)
	d.ready = true
}

// lookupLatency prefers a volume-specific setting. Callers hold d.mu.
func (d *Driver) lookupLatency(method, volumeID string) time.Duration {
	if volumeID != "" {
		if l, ok := d.latency[key{method, volumeID}]; ok {
			return l
		}
	}
	return d.latency[key{method, ""}]
}

// takeNodeFault consumes one use of the fault injected for nodeID. Callers
// hold d.mu.
func takeNodeFault(faults map[key]*fault, method, nodeID string) (fault, bool) {
	if nodeID == "" {
		return fault{}, false
	}
	return consume(faults, key{method, nodeID})
}

// takeFault consumes one use of the matching fault, preferring a
// volume-specific one, and returns a copy of it. Callers hold d.mu.
func takeFault(faults map[key]*fault, method, volumeID string) (fault, bool) {
	k := key{method, volumeID}
	if _, ok := faults[k]; !ok && volumeID != "" {
		k = key{method, ""}
	}
	return consume(faults, k)
}

// consume takes one use of the fault at k, if any, forgets it once it is
// used up, and returns a copy of it. Callers hold d.mu.
func consume(faults map[key]*fault, k key) (fault, bool) {
	f, ok := faults[k]
	if !ok {
		return fault{}, false
	}
	if f.remaining > 0 {
		f.remaining--
		if f.remaining == 0 {
			delete(faults, k)
		}
	}
	return *f, true
}
