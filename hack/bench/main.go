// Command bench measures csi-attacher at scale; `make bench` runs it.
//
// It needs nothing but the envtest binaries (kube-apiserver and etcd, found
// through KUBEBUILDER_ASSETS, which `make bench` sets) and a Go toolchain.
// It runs everything on this machine:
//
//   - a control plane started with controller-runtime's envtest, with room
//     for a burst of requests (--max-requests-inflight=3000,
//     --max-mutating-requests-inflight=1000) and without the
//     StorageObjectInUseProtection admission plugin: there is no
//     kube-controller-manager to remove the kubernetes.io/pv-protection
//     finalizer, so with it no PersistentVolume could ever be deleted;
//   - the fake CSI driver (internal/csi/fake) in this process, with a
//     configurable latency per ControllerPublishVolume and
//     ControllerUnpublishVolume (default 0);
//   - the attacher, built from this repository (go build) and run as a
//     subprocess as a user would run it: default flags plus --csi-address,
//     --kubeconfig, --metrics-addr and --health-probe-bind-address on
//     127.0.0.1, plus whatever follows `--` on the command line (later flags
//     win, so those may override ours too).
//
// The phases, each timed:
//
//  1. start the control plane (in parallel with building the attacher);
//  2. create a CSINode, N PersistentVolumes of the driver and, with
//     -other-driver-objects=M, M PersistentVolumes and M VolumeAttachments of
//     another driver (a busy cluster, for the memory figures);
//  3. start the attacher and wait for its /readyz, for its leader-election
//     Lease (unless --leader-election=false is passed) and for its
//     controllers to start their workers (the "Starting workers" log line);
//  4. attach: create N VolumeAttachments at once (50 concurrent requests)
//     and wait until all are attached;
//  5. detach: delete them all and wait until they are gone;
//  6. release: delete the N PersistentVolumes and wait until they are gone.
//
// The objects are observed through informers (one LIST and one WATCH per
// resource), not by polling. The attach latency of a VolumeAttachment is the
// time from just before its create request to the event that shows
// status.attached=true, both on this process's clock; a phase ends at its
// last such event.
//
// Around phases 4-6 (and 2 s after each, for writes that trail the last
// event) the benchmark scrapes the kube-apiserver's own /metrics and takes
// the deltas of apiserver_request_total by verb, resource and subresource.
// The benchmark's own requests (it only creates and deletes) are counted and
// subtracted; Lease writes (leader election, API server heartbeats) are
// reported apart, as background. What remains are the attacher's writes,
// given per attach, per detach and per PV release, including failed ones
// (e.g. a conflict or a NotFound status patch), which are also counted apart.
// Reads (GET, LIST, WATCH; a WATCH is counted when it ends) are given per
// phase; the benchmark's informers started earlier and rarely add to them.
// Watchers that the API server closed because they did not keep up with the
// events (apiserver_terminated_watchers_total; the attacher's or the
// benchmark's) are reported as a warning.
//
// The driver counts the CSI calls by method and the duplicates: a
// ControllerPublishVolume for a (volume, node) pair that is already published,
// or a ControllerUnpublishVolume for a pair that is not published. The
// attacher's peak RSS is its VmHWM (sampled every 200 ms) or its rusage after
// exit, whichever is larger; its CPU time is utime+stime, per phase from
// /proc and in total after exit. At the end the attacher gets SIGTERM and 30 s
// to exit.
//
// While it waits, the benchmark prints a progress line every 2 s
// ("attach: 734/1000 attached, 12.1 s"). At the end it prints a table and one
// line "BENCH_JSON {...}" with every figure, for scripts. If a phase does not
// finish within -timeout (counted from the start), or the attacher exits, it
// fails with exit status 1 and prints the last 30 lines of the attacher's log
// and the log's path.
//
// Usage:
//
//	make bench                                  # N=1000, default flags
//	make bench N=5000
//	make bench BENCH_ARGS='-publish-latency=1s -unpublish-latency=1s'
//	make bench BENCH_ARGS='-n 5000 -other-driver-objects 5000 -v'
//	make bench BENCH_ARGS='-n 1000 -- --worker-threads=10 --kube-api-qps=5 --kube-api-burst=10'
//	KUBEBUILDER_ASSETS=$(hack/install-envtest.sh) go run ./hack/bench -n 50
//
// Flags:
//
//	-n N                     volumes (default 1000, or $N when -n is not given)
//	-publish-latency D       latency of every ControllerPublishVolume (default 0)
//	-unpublish-latency D     latency of every ControllerUnpublishVolume (default 0)
//	-other-driver-objects M  PVs and VAs of another driver created beforehand (default 0)
//	-timeout D               for the whole run (default 10m)
//	-settle D                wait after each phase before scraping /metrics (default 2s)
//	-json PATH               also write the JSON report to PATH
//	-v                       print the API requests per phase by verb/resource/subresource
//	-keep                    keep the temporary directory (kubeconfig, attacher log)
//	-- ARGS                  extra flags for the attacher
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	driverName      = "bench.csi.example.com"
	otherDriverName = "other.csi.example.com"
	nodeName        = "bench-node"
	nodeID          = "bench-node-id"

	vaPrefix      = "bench-va-"
	pvPrefix      = "bench-pv-"
	volumePrefix  = "bench-vol-"
	otherVAPrefix = "other-va-"
	otherPVPrefix = "other-pv-"

	// poolSize bounds the benchmark's concurrent create and delete requests.
	poolSize = 50
	// clientQPS and clientBurst keep client-go's rate limiter out of the way
	// of the benchmark's own requests.
	clientQPS   = 5000
	clientBurst = 10000

	progressEvery  = 2 * time.Second
	rssSampleEvery = 200 * time.Millisecond
	// attacherStopTimeout is how long the attacher gets to exit after SIGTERM.
	attacherStopTimeout = 30 * time.Second
	// workersTimeout bounds the wait for the attacher's controllers to start.
	workersTimeout = 60 * time.Second
	logTail        = 30
	// maxSocketPath is the usable length of a unix socket path.
	maxSocketPath = 100
)

// errInterrupted ends the benchmark after Ctrl-C (or SIGTERM).
var errInterrupted = errors.New("interrupted")

// config is the command line.
type config struct {
	n                int
	publishLatency   time.Duration
	unpublishLatency time.Duration
	otherObjects     int
	timeout          time.Duration
	settle           time.Duration
	jsonPath         string
	verbose          bool
	keep             bool
	attacherArgs     []string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.n, "n", 1000, "number of volumes (default 1000, or $N when -n is not given)")
	fs.DurationVar(&c.publishLatency, "publish-latency", 0, "latency of every ControllerPublishVolume call")
	fs.DurationVar(&c.unpublishLatency, "unpublish-latency", 0, "latency of every ControllerUnpublishVolume call")
	fs.IntVar(&c.otherObjects, "other-driver-objects", 0, "PersistentVolumes and VolumeAttachments of another driver to create before the run")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "timeout for the whole run")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait after each phase before reading the API server's metrics")
	fs.StringVar(&c.jsonPath, "json", "", "also write the JSON report to this file")
	fs.BoolVar(&c.verbose, "v", false, "print the API requests of each phase by verb, resource and subresource")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (kubeconfig, attacher log)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: bench [flags] [-- attacher flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.attacherArgs = fs.Args()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["n"] {
		if v := strings.TrimSpace(getenv("N")); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("invalid N=%q: %w", v, err)
			}
			c.n = n
		}
	}
	switch {
	case c.n < 1:
		return c, fmt.Errorf("-n must be at least 1, got %d", c.n)
	case c.n > 99999:
		return c, fmt.Errorf("-n must be at most 99999, got %d", c.n)
	case c.otherObjects < 0 || c.otherObjects > 99999:
		return c, fmt.Errorf("-other-driver-objects must be between 0 and 99999, got %d", c.otherObjects)
	case c.timeout <= 0:
		return c, fmt.Errorf("-timeout must be positive")
	case c.publishLatency < 0 || c.unpublishLatency < 0 || c.settle < 0:
		return c, fmt.Errorf("latencies and -settle must not be negative")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the benchmark at once
	}()

	b := newBench(cfg)
	err = b.run(ctx)
	if err != nil && ctx.Err() != nil {
		err = errInterrupted
	}
	// The log tail is taken before cleanup stops the attacher, so that it
	// shows the state at the failure, and printed after, so that it ends
	// the output.
	var failure string
	if err != nil {
		failure = b.failure(err)
	}
	b.cleanup(err == nil)
	if err != nil {
		fmt.Print(failure)
		os.Exit(1)
	}
}
