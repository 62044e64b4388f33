package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

func main() {
	address := flag.String("csi-address", "/tmp/fake-csi.sock", "unix socket to listen on: /path or unix:///path")
	name := flag.String("driver-name", fake.DefaultName, "driver name returned by GetPluginInfo")
	noPublish := flag.Bool("no-publish", false, "do not announce PUBLISH_UNPUBLISH_VOLUME (the attacher then runs in trivial mode)")
	noReadonly := flag.Bool("no-readonly", false, "do not announce PUBLISH_READONLY")
	publishLatency := flag.Duration("publish-latency", 0, "delay of every ControllerPublishVolume call")
	unpublishLatency := flag.Duration("unpublish-latency", 0, "delay of every ControllerUnpublishVolume call")
	finishAbandoned := flag.Bool("finish-abandoned-calls", false, "run every call to its end, latency and all, even when its caller gives up, as a real backend finishes an attach it has started")
	quiet := flag.Bool("quiet", false, "do not log each call (for benchmarks with many calls)")
	stateFile := flag.String("state-file", "", "keep the publications and their history in this JSON file: loaded at start, rewritten after every publish and unpublish, so they survive a restart as a storage backend's attachments do")
	callsFile := flag.String("calls-file", "", "append a JSON line for every call to this file")
	fullNodesFile := flag.String("full-nodes-file", "", "node IDs, one per line, whose ControllerPublishVolume calls fail with ResourceExhausted, as a node at its attach limit answers; the file is read again every 200ms and may be absent (no full node)")
	gceIDs := flag.Bool("gce-pd-volume-ids", false, "keep and list volumes under complete GCE PD IDs, taking the project from the node ID, as pd.csi.storage.gke.io does")
	flag.Parse()

	logger := log.New(os.Stderr, "fakedriver: ", log.LstdFlags|log.Lmicroseconds)
	if flag.NArg() > 0 {
		logger.Fatalf("unexpected arguments %q", flag.Args())
	}
	for flagName, d := range map[string]time.Duration{"--publish-latency": *publishLatency, "--unpublish-latency": *unpublishLatency} {
		if d < 0 {
			logger.Fatalf("%s must not be negative, got %s", flagName, d)
		}
	}
	ep, err := csi.ParseAddress(*address)
	if err != nil {
		logger.Fatalf("--csi-address: %v", err)
	}
	if ep.Network != "unix" {
		logger.Fatalf("--csi-address %q: the fake driver only listens on unix sockets", *address)
	}

	cfg := fake.DefaultConfig(*name)
	cfg.PublishUnpublish = !*noPublish
	cfg.PublishReadonly = !*noReadonly
	cfg.FinishAbandoned = *finishAbandoned
	if *gceIDs {
		cfg.CanonicalVolumeID = fake.GCEPDVolumeID
	}
	var drv *fake.Driver
	rec, err := newRecorder(*stateFile, *callsFile, func() fake.State { return drv.State() })
	if err != nil {
		logger.Fatal(err)
	}
	cfg.OnCall = func(c fake.Call) {
		if !*quiet {
			logger.Print(formatCall(c))
		}
		if err := rec.record(c); err != nil {
			logger.Fatal(err)
		}
	}
	drv = fake.New(cfg)
	if err := rec.restore(drv); err != nil {
		logger.Fatal(err)
	}
	drv.SetLatency(fake.MethodPublish, "", *publishLatency)
	drv.SetLatency(fake.MethodUnpublish, "", *unpublishLatency)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := drv.Start(ep.Address); err != nil {
		logger.Fatal(err)
	}
	if *fullNodesFile != "" {
		go followFullNodes(ctx, drv, *fullNodesFile, logger)
	}
	logger.Printf("serving driver %q on %s (publish=%t readonly=%t publish-latency=%s unpublish-latency=%s)",
		*name, drv.Address(), cfg.PublishUnpublish, cfg.PublishReadonly, *publishLatency, *unpublishLatency)
	<-ctx.Done()
	logger.Print("signal received, stopping")
	drv.Stop()
	logger.Printf("stopped; %d volumes published at exit", len(drv.Publications()))
	if err := rec.close(); err != nil {
		logger.Fatal(err)
	}
}

// followFullNodes keeps the driver's full nodes as listed in path: a node
// listed answers every publish with ResourceExhausted until it is removed
// from the list.
func followFullNodes(ctx context.Context, drv *fake.Driver, path string, logger *log.Logger) {
	full := map[string]bool{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			logger.Printf("--full-nodes-file: %v", err)
		}
		listed := map[string]bool{}
		for _, line := range strings.Split(string(data), "\n") {
			if node := strings.TrimSpace(line); node != "" {
				listed[node] = true
			}
		}
		for node := range listed {
			if !full[node] {
				drv.InjectNodeError(fake.MethodPublish, node, codes.ResourceExhausted,
					fmt.Sprintf("node %s has reached its limit of attached volumes", node), 0)
				logger.Printf("node %q is full: publishes to it fail with ResourceExhausted", node)
			}
		}
		for node := range full {
			if !listed[node] {
				drv.ClearNodeError(fake.MethodPublish, node)
				logger.Printf("node %q has room again", node)
			}
		}
		full = listed
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// formatCall prints one call on one line. Secrets are deliberately absent;
// only their count is shown so a missing secret is still visible.
func formatCall(c fake.Call) string {
	s := fmt.Sprintf("%s code=%s duration=%s", c.Method, c.Code, c.End.Sub(c.Start).Round(time.Microsecond))
	if c.VolumeID != "" {
		s += fmt.Sprintf(" volume=%q", c.VolumeID)
	}
	if c.NodeID != "" {
		s += fmt.Sprintf(" node=%q", c.NodeID)
	}
	if c.Capability != nil {
		s += fmt.Sprintf(" readonly=%t mode=%s", c.ReadOnly, c.Capability.GetAccessMode().GetMode())
	}
	if len(c.Secrets) > 0 {
		s += fmt.Sprintf(" secrets=%d", len(c.Secrets))
	}
	return s
}
