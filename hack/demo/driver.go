package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// startDriver serves the fake CSI driver on a unix socket in the temporary
// directory and prints every call it receives.
func (d *demo) startDriver(ctx context.Context) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	socket := filepath.Join(d.tmpDir, testbed.SocketName)
	d.step("starting the fake CSI driver %s on %s", driverName, socket)
	cfg := fake.DefaultConfig(driverName)
	var probes sync.Map // code -> printed once
	cfg.OnCall = func(c fake.Call) {
		// The attacher probes the driver every few seconds; print each
		// kind of answer once so the interesting calls stand out.
		if c.Method == fake.MethodProbe {
			if _, seen := probes.LoadOrStore(c.Code, true); seen {
				return
			}
		}
		// Calls go through the same queue as the object changes, so that
		// they are printed in the order they happened.
		ev := objEvent{at: time.Now(), call: &c}
		select {
		case d.events <- ev:
		default: // nobody is reading the queue: the demo is ending
			d.printCall(ev)
		}
	}
	d.driver = fake.New(cfg)
	if err := d.driver.Start(socket); err != nil {
		return fmt.Errorf("starting the fake CSI driver: %w", err)
	}
	d.defer_(func() {
		d.say("stopping the fake CSI driver")
		d.driver.Stop()
	})
	return nil
}

// formatCall prints one driver call without its secrets, e.g.
// "ControllerPublishVolume volume=vol-demo-1 node=demo-node-id -> OK".
func formatCall(c fake.Call) string {
	var b strings.Builder
	b.WriteString(c.Method)
	if c.VolumeID != "" {
		fmt.Fprintf(&b, " volume=%s", c.VolumeID)
	}
	if c.NodeID != "" {
		fmt.Fprintf(&b, " node=%s", c.NodeID)
	}
	fmt.Fprintf(&b, " -> %s", c.Code)
	if c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish {
		fmt.Fprintf(&b, " (%s)", c.End.Sub(c.Start).Round(10*time.Microsecond))
	}
	if c.Method == fake.MethodProbe {
		b.WriteString(" (repeated probes are not shown)")
	}
	return b.String()
}
