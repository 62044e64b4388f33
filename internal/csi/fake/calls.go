package fake

import (
	"maps"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Call is the record of one gRPC call received by the driver.
type Call struct {
	// Method is the short method name, e.g. MethodPublish.
	Method   string
	VolumeID string
	NodeID   string
	ReadOnly bool
	// Capability is a copy of the request's volume capability.
	Capability *csipb.VolumeCapability
	// Secrets and VolumeContext are copies of the request's maps; nil when
	// the request had none.
	Secrets       map[string]string
	VolumeContext map[string]string
	// Code is the gRPC code returned to the caller; OK while in flight.
	Code codes.Code
	// Start and End bracket the call; End is zero while in flight.
	Start, End time.Time
	// Caller is the process ID of the client that made the call; 0 when
	// unknown.
	Caller int
}

// Calls returns a copy of the call record, in the order the calls arrived.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Call, len(d.calls))
	for i, c := range d.calls {
		out[i] = c.clone()
	}
	return out
}

// CallCount counts the recorded calls of method for volumeID ("" = any volume).
func (d *Driver) CallCount(method, volumeID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.Method == method && (volumeID == "" || c.VolumeID == volumeID) {
			n++
		}
	}
	return n
}

// ResetCalls empties the call record and the MaxConcurrent peaks.
// Calls in flight finish normally but are not recorded.
func (d *Driver) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
	clear(d.maxInFlight)
	// Peaks restart from what is in flight now, so they stay truthful.
	for m, n := range d.inFlight {
		d.maxInFlight[m] = n
	}
}

// MaxConcurrent returns the highest number of calls of method seen in
// flight at the same time (since New or ResetCalls).
func (d *Driver) MaxConcurrent(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxInFlight[method]
}

func (c *Call) clone() Call {
	out := *c
	out.Secrets = maps.Clone(c.Secrets)
	out.VolumeContext = maps.Clone(c.VolumeContext)
	if c.Capability != nil {
		out.Capability = proto.Clone(c.Capability).(*csipb.VolumeCapability)
	}
	return out
}

// newCall extracts the interesting fields of any CSI request. Requests
// carry them under the same getter names, so small interfaces suffice.
func newCall(method string, req any) *Call {
	c := &Call{Method: method, Start: time.Now()}
	if r, ok := req.(interface{ GetVolumeId() string }); ok {
		c.VolumeID = r.GetVolumeId()
	}
	if r, ok := req.(interface{ GetNodeId() string }); ok {
		c.NodeID = r.GetNodeId()
	}
	if r, ok := req.(interface{ GetReadonly() bool }); ok {
		c.ReadOnly = r.GetReadonly()
	}
	if r, ok := req.(interface {
		GetVolumeCapability() *csipb.VolumeCapability
	}); ok && r.GetVolumeCapability() != nil {
		c.Capability = proto.Clone(r.GetVolumeCapability()).(*csipb.VolumeCapability)
	}
	if r, ok := req.(interface{ GetSecrets() map[string]string }); ok {
		c.Secrets = maps.Clone(r.GetSecrets())
	}
	if r, ok := req.(interface{ GetVolumeContext() map[string]string }); ok {
		c.VolumeContext = maps.Clone(r.GetVolumeContext())
	}
	return c
}
