package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
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
)

// errInterrupted ends the benchmark after Ctrl-C (or SIGTERM).
var errInterrupted = errors.New("interrupted")

// config is the command line.
type config struct {
	n                int
	publishLatency   time.Duration
	unpublishLatency time.Duration
	// check fails the run when the write floor or zero duplicate CSI
	// calls do not hold (see checks).
	check bool
	// cpuProfile, if set, is where the attacher's CPU profile of the
	// measured phases is written.
	cpuProfile string
	// allocProfile, if set, is where the attacher's allocation profile of
	// the measured phases is written.
	allocProfile string
	otherObjects int
	timeout      time.Duration
	settle       time.Duration
	jsonPath     string
	verbose      bool
	keep         bool
	attacherArgs []string
	// cluster runs the cluster benchmark (e2e.go) on nodes kwok nodes.
	cluster bool
	nodes   int

	// scale, when positive, runs the scale benchmark (scale.go) with that
	// many attached VolumeAttachments before the attacher starts.
	scale        int
	scaleNew     int
	scalePending int
	scaleDetach  int
	scaleNodes   int
	// referenceBinary, if set, is the reference attacher, run after ours
	// in the same scale benchmark; referenceArgs replace its default flags.
	referenceBinary string
	referenceArgs   string
	rounds          int
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.n, "n", 1000, "number of volumes (default 1000, or $N when -n is not given)")
	fs.DurationVar(&c.publishLatency, "publish-latency", 0, "latency of every ControllerPublishVolume call")
	fs.DurationVar(&c.unpublishLatency, "unpublish-latency", 0, "latency of every ControllerUnpublishVolume call")
	var csiLatency time.Duration
	fs.DurationVar(&csiLatency, "csi-latency", 0, "latency of every ControllerPublishVolume and ControllerUnpublishVolume call (-publish-latency and -unpublish-latency win)")
	fs.BoolVar(&c.check, "check", true, "fail when the attacher writes more than 3/1/1 times per attach/detach/release or repeats a CSI call")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the attacher's CPU profile of the attach, detach and release phases to this file (through its --pprof-bind-address)")
	fs.StringVar(&c.allocProfile, "allocprofile", "", "write the attacher's allocation profile of the attach, detach and release phases to this file (through its --pprof-bind-address)")
	fs.IntVar(&c.otherObjects, "other-driver-objects", 0, "PersistentVolumes and VolumeAttachments of another driver to create before the run")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "timeout for the whole run")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait after each phase before reading the API server's metrics")
	fs.StringVar(&c.jsonPath, "json", "", "also write the JSON report to this file")
	fs.BoolVar(&c.verbose, "v", false, "print the API requests of each phase by verb, resource and subresource")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (kubeconfig, attacher log)")
	fs.BoolVar(&c.cluster, "cluster", false, "run the cluster benchmark: -n Pods of StatefulSets on -nodes kwok nodes, with kube-controller-manager and kube-scheduler (needs hack/install-envtest.sh e2e)")
	fs.IntVar(&c.nodes, "nodes", 50, "kwok nodes, with -cluster")
	fs.IntVar(&c.scale, "scale", 0, "run the scale benchmark with this many attached VolumeAttachments of the driver before the attacher starts (e.g. 20000, 100000)")
	fs.IntVar(&c.scaleNew, "scale-new", 100, "with -scale: VolumeAttachments created right after the attacher starts")
	fs.IntVar(&c.scalePending, "scale-pending", 100, "with -scale: VolumeAttachments created, not attached, before the attacher starts")
	fs.IntVar(&c.scaleDetach, "scale-detach", 1000, "with -scale: existing VolumeAttachments deleted at once after the start")
	fs.IntVar(&c.scaleNodes, "scale-nodes", 500, "with -scale: nodes (CSINodes) the VolumeAttachments are spread over")
	fs.StringVar(&c.referenceBinary, "reference-binary", "", "also run this attacher binary, the reference (hack/install-reference-attacher.sh builds it), after ours, and print both side by side")
	fs.StringVar(&c.referenceArgs, "reference-args", "", "with -reference-binary: the reference's flags, space-separated (default \""+strings.Join(referenceDefaultArgs, " ")+"\")")
	fs.IntVar(&c.rounds, "rounds", 1, "with -scale or -reference-binary: run every binary this many times, alternating")
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
	if !set["publish-latency"] {
		c.publishLatency = csiLatency
	}
	if !set["unpublish-latency"] {
		c.unpublishLatency = csiLatency
	}
	if !set["n"] {
		if v := strings.TrimSpace(getenv("N")); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("invalid N=%q: %w", v, err)
			}
			c.n = n
		}
	}
	if c.scale > 0 && !set["other-driver-objects"] {
		c.otherObjects = c.scale / 10
	}
	if c.scale > 0 && !set["scale-detach"] {
		c.scaleDetach = min(c.scaleDetach, c.scale)
	}
	if c.scale > 0 {
		if err := c.validateScale(); err != nil {
			return c, err
		}
	} else if c.referenceBinary != "" {
		if err := c.validateCompare(); err != nil {
			return c, err
		}
	}
	switch {
	case c.n < 1:
		return c, fmt.Errorf("-n must be at least 1, got %d", c.n)
	case c.n > 99999:
		return c, fmt.Errorf("-n must be at most 99999, got %d", c.n)
	case c.otherObjects < 0 || c.otherObjects > 99999:
		return c, fmt.Errorf("-other-driver-objects must be between 0 and 99999, got %d", c.otherObjects)
	case c.cluster && (c.nodes < 1 || c.nodes > 999):
		return c, fmt.Errorf("-nodes must be between 1 and 999, got %d", c.nodes)
	case c.cluster && len(c.attacherArgs) > 0:
		return c, fmt.Errorf("-cluster runs the attacher with the shipped manifest's flags; extra attacher flags are not accepted")
	case c.timeout <= 0:
		return c, fmt.Errorf("-timeout must be positive")
	case c.cluster && (c.cpuProfile != "" || c.allocProfile != ""):
		return c, fmt.Errorf("-cpuprofile and -allocprofile are not available with -cluster")
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
	ctx := testbed.SignalContext()
	if cfg.cluster {
		if err := runCluster(ctx, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if cfg.scale > 0 {
		if _, err := runScale(ctx, cfg); err != nil {
			if ctx.Err() != nil {
				err = errInterrupted
			}
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if cfg.referenceBinary != "" {
		if _, err := runCompare(ctx, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
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

// validateScale checks the flags of the scale benchmark.
func (c config) validateScale() error {
	switch {
	case c.scale > 999999:
		return fmt.Errorf("-scale must be at most 999999, got %d", c.scale)
	case c.cluster:
		return fmt.Errorf("-scale and -cluster are two benchmarks; pick one")
	case c.scaleNew < 1 || c.scaleNew > 999999:
		return fmt.Errorf("-scale-new must be between 1 and 999999, got %d", c.scaleNew)
	case c.scalePending < 0 || c.scalePending > 999999:
		return fmt.Errorf("-scale-pending must be between 0 and 999999, got %d", c.scalePending)
	case c.scaleDetach < 0 || c.scaleDetach > c.scale:
		return fmt.Errorf("-scale-detach must be between 0 and -scale (%d), got %d", c.scale, c.scaleDetach)
	case c.scaleNodes < 1 || c.scaleNodes > 9999:
		return fmt.Errorf("-scale-nodes must be between 1 and 9999, got %d", c.scaleNodes)
	case c.otherObjects > 999999:
		return fmt.Errorf("-other-driver-objects must be at most 999999, got %d", c.otherObjects)
	case c.rounds < 1:
		return fmt.Errorf("-rounds must be at least 1, got %d", c.rounds)
	case c.allocProfile != "":
		return fmt.Errorf("-allocprofile is not available with -scale (use -cpuprofile)")
	}
	if c.referenceBinary != "" {
		if _, err := os.Stat(c.referenceBinary); err != nil {
			return fmt.Errorf("-reference-binary: %w", err)
		}
	}
	return nil
}
