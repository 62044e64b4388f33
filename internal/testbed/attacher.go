package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"time"
)

// BuildAttacher runs `go build [extraArgs] -o bin .` in root, the
// repository, in the background: the build and the start of the control
// plane take seconds each, and run in parallel. The returned function waits
// for the build and returns how long it took; it may be called more than
// once. Ending ctx stops the build, and the function then returns
// context.Cause(ctx).
func BuildAttacher(ctx context.Context, root, bin string, extraArgs ...string) func() (time.Duration, error) {
	return Build(ctx, root, bin, ".", extraArgs...)
}

// Build is BuildAttacher for any package of the repository, such as
// ./hack/fakedriver.
func Build(ctx context.Context, root, bin, pkg string, extraArgs ...string) func() (time.Duration, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return func() (time.Duration, error) {
			return 0, fmt.Errorf("the go command is needed to build csi-attacher: %w", err)
		}
	}
	var (
		done     = make(chan struct{})
		took     time.Duration
		out      []byte
		buildErr error
	)
	args := slices.Concat([]string{"build"}, extraArgs, []string{"-o", bin, pkg})
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	began := time.Now()
	go func() {
		out, buildErr = cmd.CombinedOutput()
		took = time.Since(began)
		close(done)
	}()
	return func() (time.Duration, error) {
		<-done
		switch {
		case ctx.Err() != nil:
			return took, context.Cause(ctx)
		case buildErr != nil:
			return took, fmt.Errorf("go build of %s in %s failed: %w\n%s", pkg, root, buildErr, bytes.TrimSpace(out))
		}
		return took, nil
	}
}

// Endpoints are the addresses (host:port) of the attacher's two HTTP
// listeners.
type Endpoints struct {
	Metrics string // --metrics-addr
	Health  string // --health-probe-bind-address
}

// FreeEndpoints puts both listeners on distinct free ports of 127.0.0.1, so
// that runs can overlap and nothing outside the machine reaches them.
func FreeEndpoints() (Endpoints, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return Endpoints{}, err
	}
	return Endpoints{
		Metrics: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Health:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}, nil
}

// Flags returns the attacher's flags for the two listeners. Callers place
// them among their own flags (the demo prints the command line in its own
// order; bench puts the user's flags last, so that they win).
func (e Endpoints) Flags() []string {
	return []string{"--metrics-addr=" + e.Metrics, "--health-probe-bind-address=" + e.Health}
}

// ReadyzURL is the attacher's readiness check, for Ready.
func (e Endpoints) ReadyzURL() string { return "http://" + e.Health + "/readyz" }

// MetricsURL is where the attacher serves its metrics.
func (e Endpoints) MetricsURL() string { return "http://" + e.Metrics + "/metrics" }

// probeClient gives up on a check after a second, so that a hung listener
// does not hold up the poll that calls Ready.
var probeClient = &http.Client{Timeout: time.Second}

// Ready reports whether GET url (the attacher's /readyz) answers 200 OK.
// Callers poll it.
func Ready(url string) bool {
	resp, err := probeClient.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Attacher is the attacher binary running as a subprocess.
type Attacher = Process

// StartAttacher starts the attacher binary bin with args (see Start).
func StartAttacher(bin string, args []string, out io.WriteCloser) (*Attacher, error) {
	return Start("csi-attacher", bin, args, out)
}

// ExitStatus describes the error of an exited process, as Attacher.Err
// returns it, for messages: "exit status 0" for success rather than an
// empty or "<nil>" status.
func ExitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
