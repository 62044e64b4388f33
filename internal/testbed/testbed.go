package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// SocketName is the name of the fake CSI driver's socket in the directory
// that TempDir creates.
const SocketName = "csi.sock"

// maxSocketPath is the usable length of a unix socket path (sun_path is 108
// bytes on Linux, 104 on macOS, including the NUL).
const maxSocketPath = 100

// RepoRoot walks up from the working directory to the directory holding
// go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory; run from the repository")
		}
		dir = parent
	}
}

// AssetsDir returns the directory holding kube-apiserver and etcd, from
// KUBEBUILDER_ASSETS, checking that both are there. target names the make
// target that provides them, for the error message.
func AssetsDir(target string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	hint := fmt.Sprintf("run `make %s`, which provides the envtest binaries, or set KUBEBUILDER_ASSETS=$(hack/install-envtest.sh)", target)
	if dir == "" {
		return "", errors.New("KUBEBUILDER_ASSETS is not set; " + hint)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s not found in %s (KUBEBUILDER_ASSETS); %s", name, dir, hint)
		}
	}
	return dir, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1: it holds each
// port open until it has found them all.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}

// TempDir creates a temporary directory for a run (kubeconfig, attacher
// binary and log, the driver's socket SocketName). The directory holds the
// socket, so its path must be short: when $TMPDIR is too long for that (as
// it can be on macOS), the directory goes in /tmp instead.
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err == nil && len(filepath.Join(dir, SocketName)) > maxSocketPath {
		_ = os.RemoveAll(dir)
		dir, err = os.MkdirTemp("/tmp", prefix)
	}
	if err != nil {
		return "", fmt.Errorf("creating a temporary directory: %w", err)
	}
	return dir, nil
}

// SignalContext returns a context that ends on the first Ctrl-C (or
// SIGTERM), so that the program can stop what it started in order. The
// default handling then comes back: a second Ctrl-C kills the program at
// once.
func SignalContext() context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx
}
