package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Defaults applied by Connect to zero Options fields.
const (
	// DefaultTimeout bounds each Publish/Unpublish call and each ListVolumes pass.
	DefaultTimeout = time.Minute
	// DefaultProbeTimeout bounds each Probe and each identity call at start-up.
	DefaultProbeTimeout = 5 * time.Second
)

const (
	// probeInterval is the pause between Probes while waiting for the driver.
	probeInterval = time.Second
	// waitLogInterval spaces the "still waiting" messages.
	waitLogInterval = 10 * time.Second
	// maxReconnectDelay caps gRPC's reconnect backoff: a restarted driver
	// is picked up within a second, as with the reference attacher.
	maxReconnectDelay = time.Second
	// maxRecvMsgSize lifts gRPC's 4 MiB default. An unpaged ListVolumes
	// answer of a driver with tens of thousands of volumes exceeds it.
	maxRecvMsgSize = 64 << 20
)

// Options configure Connect.
type Options struct {
	// Address is the driver endpoint, see ParseAddress.
	Address string
	// Timeout bounds each Publish and Unpublish call and each whole
	// ListVolumes pass (--timeout). Zero means DefaultTimeout.
	Timeout time.Duration
	// ProbeTimeout bounds each Probe, and each identity/capability call at
	// start-up (CSI_PROBE_TIMEOUT). Zero means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// MaxGRPCLogLength truncates logged responses to this many bytes; <= 0
	// means no limit (--max-grpc-log-length).
	MaxGRPCLogLength int
	// Logger receives connection events and the gRPC log. The zero value
	// discards everything.
	Logger logr.Logger
	// Registry receives the csi_sidecar_operations_seconds histogram. Nil
	// means the histogram is recorded but not registered.
	Registry prometheus.Registerer
	// Waiting, when set, is called by Connect after each failed Probe while
	// it waits for the driver, with the reason (a *SocketAccessError when
	// the socket's permissions keep the attacher out), so that the caller
	// can report it before the client exists (the start-up /readyz).
	Waiting func(reason error)
}

// Client is the connection to one CSI driver. It is safe for concurrent use.
type Client struct {
	opts       Options
	endpoint   Endpoint
	log        logr.Logger
	conn       *grpc.ClientConn
	identity   csipb.IdentityClient
	controller csipb.ControllerClient
	operations atomic.Pointer[operations]

	// driverName is read by the metrics interceptor on every call and set
	// once GetPluginInfo has answered.
	driverName    atomic.Pointer[string]
	vendorVersion string
	caps          Capabilities

	// ready is what /readyz reports; kept by the health monitor.
	ready atomic.Bool
	// notReady is why the driver is not ready, quoted by ReadyzCheck.
	notReady atomic.Pointer[error]
}

var _ Attacher = (*Client)(nil)

// Connect creates the connection, waits until the driver answers Probe with
// ready (however long that takes, until ctx ends), then reads the driver's
// name and capabilities. A lost connection is never fatal afterwards: gRPC
// reconnects by itself and calls fail with Unavailable meanwhile.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	if err := c.WaitReady(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.readIdentity(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	ops, err := c.operations.Load().register(c.opts.Registry, volume.IsMigrationDriver(c.DriverName()))
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	c.operations.Store(ops)
	c.ready.Store(true)
	return c, nil
}

// newClient builds the gRPC channel without contacting the driver:
// grpc.NewClient connects lazily, on the first call.
func newClient(opts Options) (*Client, error) {
	ep, err := ParseAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	c := &Client{opts: opts, endpoint: ep, log: opts.Logger}
	c.operations.Store(newOperations())

	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, ep.Network, ep.Address)
	}
	bo := backoff.DefaultConfig
	bo.MaxDelay = maxReconnectDelay
	conn, err := grpc.NewClient(ep.Target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo}),
		// An idle channel would drop the connection and hide an outage
		// from /readyz until the next call.
		grpc.WithIdleTimeout(0),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
		// Metrics outermost, so the logged time is not counted in them
		// and the metric covers exactly the call.
		grpc.WithChainUnaryInterceptor(
			metricsInterceptor(&c.operations, &c.driverName),
			logInterceptor(c.log, opts.MaxGRPCLogLength),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("creating gRPC client for CSI driver at %s: %w", ep, err)
	}
	c.conn = conn
	c.identity = csipb.NewIdentityClient(conn)
	c.controller = csipb.NewControllerClient(conn)
	return c, nil
}

// Close closes the connection. Calls in flight fail with Canceled.
func (c *Client) Close() error {
	c.ready.Store(false)
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("closing connection to CSI driver at %s: %w", c.endpoint, err)
	}
	return nil
}

// Endpoint returns the parsed driver address.
func (c *Client) Endpoint() Endpoint { return c.endpoint }

// DriverName returns the name the driver announced in GetPluginInfo.
func (c *Client) DriverName() string {
	if n := c.driverName.Load(); n != nil {
		return *n
	}
	return ""
}

// VendorVersion returns the vendor version from GetPluginInfo.
func (c *Client) VendorVersion() string { return c.vendorVersion }

// Capabilities returns the capabilities read at Connect.
func (c *Client) Capabilities() Capabilities { return c.caps }

// Ready reports whether the driver was reachable and ready at the last
// check. It is true after Connect; run HealthMonitor to keep it current.
func (c *Client) Ready() bool { return c.ready.Load() }

// ReadyzCheck is a healthz.Checker for /readyz. It only reads a flag, so it
// answers at once even while the driver hangs. The error quotes the last
// reason the health monitor found, a socket the attacher may not open
// included.
func (c *Client) ReadyzCheck(_ *http.Request) error {
	if c.ready.Load() {
		return nil
	}
	if reason := c.notReady.Load(); reason != nil {
		return fmt.Errorf("CSI driver at %s is not reachable or not ready: %w", c.endpoint, *reason)
	}
	return fmt.Errorf("CSI driver at %s is not reachable or not ready", c.endpoint)
}

// setNotReady marks the driver not ready for reason.
func (c *Client) setNotReady(reason error) {
	c.ready.Store(false)
	c.notReady.Store(&reason)
}

// socketAccess is a *SocketAccessError when the permissions of the driver's
// unix socket (or of a directory above it) keep this process out, else nil.
func (c *Client) socketAccess() error {
	if c.endpoint.Network != "unix" {
		return nil
	}
	if err := CheckSocketAccess(c.endpoint.Address, CurrentIdentity()); err != nil {
		return err
	}
	return nil
}

// Probe calls Probe once, bounded by ProbeTimeout. A response without the
// ready field counts as ready, as the CSI spec says.
func (c *Client) Probe(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	defer cancel()
	resp, err := c.identity.Probe(ctx, &csipb.ProbeRequest{})
	if err != nil {
		return false, fmt.Errorf("probing CSI driver at %s: %w", c.endpoint, err)
	}
	if resp.GetReady() == nil {
		return true, nil
	}
	return resp.GetReady().GetValue(), nil
}

// WaitReady probes the driver every second until it answers ready. It keeps
// waiting while the driver is unreachable (Unavailable), slow
// (DeadlineExceeded) or not ready, logging at Info every 10s. A socket whose
// permissions keep the attacher out is logged at Error instead, every 10s,
// with its owner, mode and the attacher's IDs: waiting only helps if
// someone fixes them. It returns an error when ctx ends or Probe fails in
// any other way: such a driver is broken, not starting.
func (c *Client) WaitReady(ctx context.Context) error {
	var lastLog time.Time
	for {
		ready, err := c.Probe(ctx)
		if err == nil && ready {
			return nil
		}
		var reason error = errNotReady
		var denied error
		if err != nil {
			reason = err
			if denied = c.socketAccess(); denied != nil {
				reason = denied
			}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("waiting for CSI driver at %s to become ready: %w (last probe: %v)", c.endpoint, ctxErr, reason)
		}
		if err != nil && !isWaitable(err) {
			return err
		}
		if c.opts.Waiting != nil {
			c.opts.Waiting(reason)
		}
		if time.Since(lastLog) >= waitLogInterval {
			if denied != nil {
				c.log.Error(denied, "Cannot connect to the CSI driver: the socket's permissions keep the attacher out",
					"address", c.endpoint.String(), "identity", CurrentIdentity().String())
			} else {
				c.log.Info("Waiting for the CSI driver to become ready", "address", c.endpoint.String(), "reason", reason.Error())
			}
			lastLog = time.Now()
		}
		t := time.NewTimer(probeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// errNotReady is the reason when the driver answers Probe with ready=false.
var errNotReady = errors.New("the driver reports not ready")

// isWaitable: the driver is not up yet, or too slow to answer.
func isWaitable(err error) bool {
	code, ok := Code(err)
	return ok && (code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled)
}

// readIdentity reads the driver name and capabilities, once, at start-up.
func (c *Client) readIdentity(ctx context.Context) error {
	callCtx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	info, err := c.identity.GetPluginInfo(callCtx, &csipb.GetPluginInfoRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("GetPluginInfo of CSI driver at %s: %w", c.endpoint, err)
	}
	name := info.GetName()
	if name == "" {
		return fmt.Errorf("GetPluginInfo of CSI driver at %s: the driver returned an empty name", c.endpoint)
	}
	c.driverName.Store(&name)
	c.vendorVersion = info.GetVendorVersion()

	callCtx, cancel = context.WithTimeout(ctx, c.opts.ProbeTimeout)
	pcaps, err := c.identity.GetPluginCapabilities(callCtx, &csipb.GetPluginCapabilitiesRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("GetPluginCapabilities of CSI driver %q at %s: %w", name, c.endpoint, err)
	}
	var caps Capabilities
	for _, pc := range pcaps.GetCapabilities() {
		if pc.GetService().GetType() == csipb.PluginCapability_Service_CONTROLLER_SERVICE {
			caps.ControllerService = true
		}
	}
	if caps.ControllerService {
		callCtx, cancel = context.WithTimeout(ctx, c.opts.ProbeTimeout)
		ccaps, err := c.controller.ControllerGetCapabilities(callCtx, &csipb.ControllerGetCapabilitiesRequest{})
		cancel()
		if err != nil {
			return fmt.Errorf("ControllerGetCapabilities of CSI driver %q at %s: %w", name, c.endpoint, err)
		}
		for _, cc := range ccaps.GetCapabilities() {
			switch cc.GetRpc().GetType() {
			case csipb.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME:
				caps.PublishUnpublish = true
			case csipb.ControllerServiceCapability_RPC_PUBLISH_READONLY:
				caps.PublishReadonly = true
			case csipb.ControllerServiceCapability_RPC_LIST_VOLUMES:
				caps.ListVolumes = true
			case csipb.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES:
				caps.ListVolumesPublishedNodes = true
			case csipb.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER:
				caps.SingleNodeMultiWriter = true
			}
		}
	}
	c.caps = caps
	return nil
}

// Publish calls ControllerPublishVolume with the request's fields unchanged
// and returns the publish context (nil when the driver sent none).
func (c *Client) Publish(ctx context.Context, req PublishRequest) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(withMigrated(ctx, req.Migrated), c.opts.Timeout)
	defer cancel()
	resp, err := c.controller.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{
		VolumeId:         req.VolumeID,
		NodeId:           req.NodeID,
		VolumeCapability: req.Capability,
		Readonly:         req.ReadOnly,
		Secrets:          req.Secrets,
		VolumeContext:    req.VolumeContext,
	})
	if err != nil {
		return nil, fmt.Errorf("ControllerPublishVolume of volume %q to node %q: %w", req.VolumeID, req.NodeID, err)
	}
	return resp.GetPublishContext(), nil
}

// Unpublish calls ControllerUnpublishVolume.
func (c *Client) Unpublish(ctx context.Context, req UnpublishRequest) error {
	ctx, cancel := context.WithTimeout(withMigrated(ctx, req.Migrated), c.opts.Timeout)
	defer cancel()
	_, err := c.controller.ControllerUnpublishVolume(ctx, &csipb.ControllerUnpublishVolumeRequest{
		VolumeId: req.VolumeID,
		NodeId:   req.NodeID,
		Secrets:  req.Secrets,
	})
	if err != nil {
		return fmt.Errorf("ControllerUnpublishVolume of volume %q from node %q: %w", req.VolumeID, req.NodeID, err)
	}
	return nil
}

// ListVolumes pages through ListVolumes (maxEntries per page, 0 = the
// driver decides) and returns each volume's published node IDs. The whole
// pass is bounded by Timeout, like the reference attacher's reconciler. A
// driver that repeats a page token is reported instead of looping forever.
func (c *Client) ListVolumes(ctx context.Context, maxEntries int32) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	out := map[string][]string{}
	seen := map[string]bool{}
	token := ""
	for {
		resp, err := c.controller.ListVolumes(ctx, &csipb.ListVolumesRequest{MaxEntries: maxEntries, StartingToken: token})
		if err != nil {
			return nil, fmt.Errorf("ListVolumes (starting_token %q) of CSI driver at %s: %w", token, c.endpoint, err)
		}
		for _, e := range resp.GetEntries() {
			id := e.GetVolume().GetVolumeId()
			out[id] = append(out[id], e.GetStatus().GetPublishedNodeIds()...)
		}
		token = resp.GetNextToken()
		if token == "" {
			return out, nil
		}
		if seen[token] {
			return nil, fmt.Errorf("ListVolumes of CSI driver at %s: the driver returned next_token %q twice", c.endpoint, token)
		}
		seen[token] = true
	}
}

// ConnectionUp tells whether the gRPC channel to the driver is established.
func (c *Client) ConnectionUp() bool { return c.conn.GetState() == connectivity.Ready }
