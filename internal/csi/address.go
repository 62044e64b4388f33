package csi

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// maxUnixPathLen is the size of sun_path on Linux. Longer paths fail at
// dial time with a cryptic "invalid argument"; we reject them up front.
const maxUnixPathLen = 108

// acceptedForms is quoted in every address error so the user sees what to write.
const acceptedForms = "accepted: /absolute/path, unix:///absolute/path or tcp://host:port"

// Endpoint is a parsed --csi-address.
type Endpoint struct {
	// Network is "unix" or "tcp", as net.Dial expects it.
	Network string
	// Address is the socket path or host:port, as net.Dial expects it.
	Address string
	// Target is the gRPC target passed to grpc.NewClient.
	Target string
}

// String returns the canonical form of the endpoint (unix:///path or tcp://host:port).
func (e Endpoint) String() string {
	return e.Network + "://" + e.Address
}

// ParseAddress validates a CSI endpoint address. It accepts
//
//	/absolute/path            a unix socket
//	unix:///absolute/path     a unix socket (also unix:/absolute/path)
//	tcp://host:port           TCP, port 1-65535
//
// and rejects everything else, including relative socket paths (their
// meaning would depend on the working directory of the container) and the
// other gRPC resolver schemes (dns:, passthrough:...), which a CSI driver
// next to the sidecar never needs.
func ParseAddress(address string) (Endpoint, error) {
	if address == "" {
		return Endpoint{}, fmt.Errorf("CSI address is empty; %s", acceptedForms)
	}
	if strings.ContainsAny(address, "\x00") {
		return Endpoint{}, fmt.Errorf("CSI address %q contains a NUL byte; %s", address, acceptedForms)
	}
	scheme, rest, hasScheme := strings.Cut(address, ":")
	if !hasScheme || strings.HasPrefix(address, "/") {
		return parseUnixPath(address, address)
	}
	switch strings.ToLower(scheme) {
	case "unix":
		// unix:///p is the URL form, unix:/p the gRPC shorthand. Both must
		// carry an absolute path: unix://p would read as host "p".
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			rest = after
		}
		return parseUnixPath(address, rest)
	case "tcp":
		hostport, ok := strings.CutPrefix(rest, "//")
		if !ok {
			return Endpoint{}, fmt.Errorf("CSI address %q: tcp addresses are written tcp://host:port; %s", address, acceptedForms)
		}
		return parseTCP(address, hostport)
	default:
		return Endpoint{}, fmt.Errorf("CSI address %q has unsupported scheme %q; %s", address, scheme, acceptedForms)
	}
}

func parseUnixPath(address, p string) (Endpoint, error) {
	if !strings.HasPrefix(p, "/") {
		return Endpoint{}, fmt.Errorf("CSI address %q: the unix socket path must be absolute; %s", address, acceptedForms)
	}
	p = filepath.Clean(p)
	if p == "/" {
		return Endpoint{}, fmt.Errorf("CSI address %q: the unix socket path is the root directory; %s", address, acceptedForms)
	}
	if len(p) > maxUnixPathLen {
		return Endpoint{}, fmt.Errorf("CSI address %q: the unix socket path is %d bytes long, the limit is %d", address, len(p), maxUnixPathLen)
	}
	return Endpoint{Network: "unix", Address: p, Target: "unix://" + p}, nil
}

func parseTCP(address, hostport string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return Endpoint{}, fmt.Errorf("CSI address %q: %w; %s", address, err, acceptedForms)
	}
	if host == "" {
		return Endpoint{}, fmt.Errorf("CSI address %q: the host is missing; %s", address, acceptedForms)
	}
	if !validHost(host) {
		return Endpoint{}, fmt.Errorf("CSI address %q: %q is not a valid host name or IP address", address, host)
	}
	if !validPort(port) {
		return Endpoint{}, fmt.Errorf("CSI address %q: port %q is not a number from 1 to 65535", address, port)
	}
	hp := net.JoinHostPort(host, port)
	// passthrough hands host:port to the dialer unchanged; the DNS resolver
	// would add nothing for a driver that is normally on localhost.
	return Endpoint{Network: "tcp", Address: hp, Target: "passthrough:///" + hp}, nil
}

func validPort(port string) bool {
	if port == "" || len(port) > 5 {
		return false
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// validHost accepts IP literals and DNS-style names. It exists to turn
// typos like "tcp://user@host:1" or "tcp://host:1/path" into a clear error
// at start-up instead of a dial failure later.
func validHost(host string) bool {
	if net.ParseIP(host) != nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return false
		}
	}
	return true
}
