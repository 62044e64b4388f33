package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Method names accepted by InjectError, InjectErrorAfter, SetLatency,
// CallCount and MaxConcurrent. They are the short gRPC method names, as
// recorded in Call.Method.
const (
	MethodProbe                     = "Probe"
	MethodGetPluginInfo             = "GetPluginInfo"
	MethodGetPluginCapabilities     = "GetPluginCapabilities"
	MethodControllerGetCapabilities = "ControllerGetCapabilities"
	MethodPublish                   = "ControllerPublishVolume"
	MethodUnpublish                 = "ControllerUnpublishVolume"
	MethodListVolumes               = "ListVolumes"
)

// DefaultName is the driver name used when Config.Name is empty.
const DefaultName = "fake.csi.example.com"

// DefaultVendorVersion is the vendor version used when Config.VendorVersion is empty.
const DefaultVendorVersion = "1.0.0"

// ErrAlreadyServing is returned by Start when the driver is already running.
var ErrAlreadyServing = errors.New("fake CSI driver already serving")

// stopGrace bounds how long Stop waits for in-flight calls before it cuts
// the connections; tests stop drivers often and must not hang on a call
// that sleeps for minutes.
const stopGrace = 2 * time.Second

// Config selects the identity and the capabilities the driver announces.
type Config struct {
	// Name is returned by GetPluginInfo. Default DefaultName.
	Name string
	// VendorVersion is returned by GetPluginInfo. Default DefaultVendorVersion.
	VendorVersion string
	// ControllerService announces the CONTROLLER_SERVICE plugin capability.
	ControllerService bool
	// PublishUnpublish announces PUBLISH_UNPUBLISH_VOLUME. Without it
	// ControllerPublishVolume and ControllerUnpublishVolume answer
	// Unimplemented, as a real driver without attach support would.
	PublishUnpublish bool
	// PublishReadonly announces PUBLISH_READONLY.
	PublishReadonly bool
	// SingleNodeMultiWriter announces SINGLE_NODE_MULTI_WRITER.
	SingleNodeMultiWriter bool
	// ListVolumes announces LIST_VOLUMES. Without it ListVolumes answers
	// Unimplemented.
	ListVolumes bool
	// ListVolumesPublishedNodes announces LIST_VOLUMES_PUBLISHED_NODES.
	// Without it ListVolumes entries carry no published node IDs.
	ListVolumesPublishedNodes bool
	// CanonicalVolumeID, when set, maps the volume ID of a Publish or
	// Unpublish request (and the node ID it names) to the ID the driver
	// keeps and lists, as real drivers do that complete a short or partial
	// ID (GCE PD fills in the project and zone of a migrated volume's
	// handle). Published, Publications, DetachBehindBack and ListVolumes
	// then speak canonical IDs; call records keep the requests' IDs.
	CanonicalVolumeID func(volumeID, nodeID string) string
	// FinishAbandoned makes every call run to its end, latency and all,
	// even when its caller gives up (a deadline, a cancellation, a caller
	// that died): as a real backend that has started an attach finishes
	// it whatever happens to the request. The record then shows when the
	// backend was really done, and the code it would have answered.
	FinishAbandoned bool
	// OnCall, when set, is called after every call with a copy of its
	// record. It runs on the gRPC goroutine without any lock held, so it
	// may call back into the Driver. Used by hack/fakedriver to log calls.
	OnCall func(Call)
}

// DefaultConfig returns a Config for the named driver with every capability on.
func DefaultConfig(name string) Config {
	return Config{
		Name:                      name,
		VendorVersion:             DefaultVendorVersion,
		ControllerService:         true,
		PublishUnpublish:          true,
		PublishReadonly:           true,
		SingleNodeMultiWriter:     true,
		ListVolumes:               true,
		ListVolumesPublishedNodes: true,
	}
}

// Driver is the fake CSI driver. Create it with New; the zero value is not usable.
type Driver struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedControllerServer

	cfg Config

	// mu guards everything below. It is never held while sleeping or while
	// calling Config.OnCall.
	mu             sync.Mutex
	server         *grpc.Server
	socketPath     string
	ready          bool
	volumes        map[string]map[string]struct{} // volume ID -> set of node IDs
	publishContext map[string]map[string]string
	faultsBefore   map[key]*fault
	faultsAfter    map[key]*fault
	nodeFaults     map[key]*fault // key.volumeID holds a node ID
	latency        map[key]time.Duration
	calls          []*Call
	inFlight       map[string]int
	maxInFlight    map[string]int
	overlaps       []Overlap
	repeated       map[string]int
}

// New returns a stopped driver; call Start to serve it.
func New(cfg Config) *Driver {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.VendorVersion == "" {
		cfg.VendorVersion = DefaultVendorVersion
	}
	return &Driver{
		cfg:            cfg,
		ready:          true,
		volumes:        map[string]map[string]struct{}{},
		publishContext: map[string]map[string]string{},
		faultsBefore:   map[key]*fault{},
		faultsAfter:    map[key]*fault{},
		nodeFaults:     map[key]*fault{},
		latency:        map[key]time.Duration{},
		inFlight:       map[string]int{},
		maxInFlight:    map[string]int{},
		repeated:       map[string]int{},
	}
}

// Name returns the driver name announced by GetPluginInfo.
func (d *Driver) Name() string { return d.cfg.Name }

// Start removes a stale socket file at socketPath, listens on it and serves
// in a background goroutine. It fails with ErrAlreadyServing if the driver
// is already running.
func (d *Driver) Start(socketPath string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.server != nil {
		return fmt.Errorf("%w on %s", ErrAlreadyServing, d.socketPath)
	}
	// A previous process (or a killed test) may have left the socket file
	// behind; listening would then fail with "address already in use".
	if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", socketPath, err)
	}
	lis, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("listening on unix socket %s: %w", socketPath, err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.intercept))
	csipb.RegisterIdentityServer(srv, d)
	csipb.RegisterControllerServer(srv, d)
	d.server = srv
	d.socketPath = socketPath
	go func() {
		// Serve returns when Stop is called; any other error means the
		// listener broke, which the next call will reveal to the test.
		_ = srv.Serve(callerListener{lis})
	}()
	return nil
}

// Stop stops serving: it lets in-flight calls finish for a short while, then
// closes every connection, and removes the socket file. All state is kept,
// so Start may be called again to simulate a driver restart. Stop on a
// stopped driver does nothing.
func (d *Driver) Stop() {
	d.mu.Lock()
	srv, socketPath := d.server, d.socketPath
	d.server = nil
	d.mu.Unlock()
	if srv == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		srv.Stop()
		<-done
	}
	_ = os.Remove(socketPath)
}

// Address returns the gRPC address of the socket, "unix://<path>". It is
// valid once Start has been called.
func (d *Driver) Address() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "unix://" + d.socketPath
}

// SetReady sets the ready field returned by Probe. New drivers are ready.
func (d *Driver) SetReady(ready bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ready = ready
}

// SetPublishContext sets the publish context returned for volumeID. The
// default is {"devicePath": "/dev/fake/<volumeID>"}; nil restores it.
func (d *Driver) SetPublishContext(volumeID string, pc map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc == nil {
		delete(d.publishContext, volumeID)
		return
	}
	d.publishContext[volumeID] = maps.Clone(pc)
}

// Published returns the sorted node IDs volumeID is published to.
func (d *Driver) Published(volumeID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNodes(d.volumes[volumeID])
}

// Publications returns every volume that is published somewhere, mapped to
// its sorted node IDs.
func (d *Driver) Publications() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for vol, nodes := range d.volumes {
		if len(nodes) > 0 {
			out[vol] = sortedNodes(nodes)
		}
	}
	return out
}

// canonical is the ID a request's volume is kept under.
func (d *Driver) canonical(volumeID, nodeID string) string {
	if d.cfg.CanonicalVolumeID == nil {
		return volumeID
	}
	return d.cfg.CanonicalVolumeID(volumeID, nodeID)
}

// DetachBehindBack removes a publication without any call, as if an
// administrator had detached the volume on the storage backend.
func (d *Driver) DetachBehindBack(volumeID, nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.volumes[volumeID], nodeID)
}

func sortedNodes(set map[string]struct{}) []string {
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// intercept wraps every call with the test machinery: record, concurrency
// tracking, latency, injected faults. The handlers below only hold the
// driver's plain semantics.
func (d *Driver) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	call := newCall(method, req)
	call.Caller = callerOf(ctx)

	d.mu.Lock()
	d.calls = append(d.calls, call)
	d.inFlight[method]++
	d.maxInFlight[method] = max(d.maxInFlight[method], d.inFlight[method])
	delay := d.lookupLatency(method, call.VolumeID)
	d.mu.Unlock()

	resp, err := d.serve(ctx, req, call, delay, handler)

	d.mu.Lock()
	d.inFlight[method]--
	call.Code = status.Code(err)
	call.End = time.Now()
	record := call.clone()
	d.mu.Unlock()

	if d.cfg.OnCall != nil {
		d.cfg.OnCall(record)
	}
	return resp, err
}

func (d *Driver) serve(ctx context.Context, req any, call *Call, delay time.Duration, handler grpc.UnaryHandler) (any, error) {
	if d.cfg.FinishAbandoned {
		ctx = context.WithoutCancel(ctx)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	d.mu.Lock()
	f, hit := takeNodeFault(d.nodeFaults, call.Method, call.NodeID)
	if !hit {
		f, hit = takeFault(d.faultsBefore, call.Method, call.VolumeID)
	}
	d.mu.Unlock()
	if hit {
		if f.message != "" {
			return nil, status.Error(f.code, f.message)
		}
		return nil, status.Errorf(f.code, "injected error (before) for %s volume %q", call.Method, call.VolumeID)
	}
	resp, err := handler(ctx, req)
	if err != nil {
		return resp, err
	}
	d.mu.Lock()
	f, hit = takeFault(d.faultsAfter, call.Method, call.VolumeID)
	d.mu.Unlock()
	if hit {
		return nil, status.Errorf(f.code, "injected error (after) for %s volume %q", call.Method, call.VolumeID)
	}
	return resp, nil
}
