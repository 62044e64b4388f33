package csi

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseAddress(t *testing.T) {
	long := "/" + strings.Repeat("a", maxUnixPathLen)
	for _, tc := range []struct {
		in      string
		want    Endpoint
		wantErr string
	}{
		{in: "/run/csi/socket", want: Endpoint{"unix", "/run/csi/socket", "unix:///run/csi/socket"}},
		{in: "unix:///run/csi/socket", want: Endpoint{"unix", "/run/csi/socket", "unix:///run/csi/socket"}},
		{in: "UNIX:///run/csi/socket", want: Endpoint{"unix", "/run/csi/socket", "unix:///run/csi/socket"}},
		{in: "unix:/run/csi/socket", want: Endpoint{"unix", "/run/csi/socket", "unix:///run/csi/socket"}},
		{in: "/run//csi/./socket", want: Endpoint{"unix", "/run/csi/socket", "unix:///run/csi/socket"}},
		{in: "/tmp/a:b.sock", want: Endpoint{"unix", "/tmp/a:b.sock", "unix:///tmp/a:b.sock"}},
		{in: long[:maxUnixPathLen], want: Endpoint{"unix", long[:maxUnixPathLen], "unix://" + long[:maxUnixPathLen]}},
		{in: "tcp://127.0.0.1:10000", want: Endpoint{"tcp", "127.0.0.1:10000", "passthrough:///127.0.0.1:10000"}},
		{in: "tcp://localhost:1", want: Endpoint{"tcp", "localhost:1", "passthrough:///localhost:1"}},
		{in: "tcp://[::1]:65535", want: Endpoint{"tcp", "[::1]:65535", "passthrough:///[::1]:65535"}},
		{in: "TCP://csi-driver.kube-system.svc:9000", want: Endpoint{"tcp", "csi-driver.kube-system.svc:9000", "passthrough:///csi-driver.kube-system.svc:9000"}},

		{in: "", wantErr: "empty"},
		{in: "csi.sock", wantErr: "must be absolute"},
		{in: "./csi.sock", wantErr: "must be absolute"},
		{in: "unix://csi.sock", wantErr: "must be absolute"},
		{in: "unix:csi.sock", wantErr: "must be absolute"},
		{in: "unix://", wantErr: "must be absolute"},
		{in: "/", wantErr: "root directory"},
		{in: "unix:///", wantErr: "root directory"},
		{in: long, wantErr: "limit is 108"},
		{in: "/tmp/a\x00b", wantErr: "NUL"},
		{in: "tcp://localhost", wantErr: "missing port"},
		{in: "tcp://:9000", wantErr: "host is missing"},
		{in: "tcp://h:0", wantErr: "1 to 65535"},
		{in: "tcp://h:65536", wantErr: "1 to 65535"},
		{in: "tcp://h:+80", wantErr: "1 to 65535"},
		{in: "tcp://h:http", wantErr: "1 to 65535"},
		{in: "tcp://h:80/path", wantErr: "1 to 65535"},
		{in: "tcp://user@h:80", wantErr: "not a valid host"},
		{in: "tcp:h:80", wantErr: "tcp://host:port"},
		{in: "dns:///h:80", wantErr: `unsupported scheme "dns"`},
		{in: "localhost:9000", wantErr: `unsupported scheme "localhost"`},
		{in: "http://h:80", wantErr: "unsupported scheme"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseAddress(tc.in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(err.Error()).To(ContainSubstring("CSI address"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"/run/csi/socket", "unix:///run/csi/socket", "unix:/x", "unix://x", "tcp://127.0.0.1:1",
		"tcp://[::1]:65535", "tcp://h:0", "tcp://:1", "dns:///x", "", "/", ":", "unix:", "tcp://", "tcp://[::1",
		"/a\x00", "tcp://h:99999999999999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ep, err := ParseAddress(in)
		if err != nil {
			if !strings.Contains(err.Error(), "CSI address") {
				t.Fatalf("error %q does not name the flag value", err)
			}
			return
		}
		switch ep.Network {
		case "unix":
			if !strings.HasPrefix(ep.Address, "/") || len(ep.Address) > maxUnixPathLen || ep.Target != "unix://"+ep.Address {
				t.Fatalf("bad unix endpoint %+v from %q", ep, in)
			}
		case "tcp":
			if ep.Target != "passthrough:///"+ep.Address {
				t.Fatalf("bad tcp endpoint %+v from %q", ep, in)
			}
		default:
			t.Fatalf("unexpected network %q from %q", ep.Network, in)
		}
		// The canonical form parses to the same endpoint.
		again, err := ParseAddress(ep.String())
		if err != nil || again != ep {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", in, ep, ep.String(), again, err)
		}
	})
}
