package main

import (
	"errors"
	"os"
	"path/filepath"
)

// defer_ registers a cleanup step; cleanup runs them in reverse order.
func (d *demo) defer_(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) cleanup(ok bool) {
	if len(d.cleanups) > 0 || d.tmpDir != "" {
		d.println("")
		d.step("cleaning up")
	}
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	if d.tmpDir == "" {
		return
	}
	// The directory is kept when there is something to look at: the log of
	// an attacher that ran in a failed demo, or on request.
	if (ok || d.attacher == nil) && os.Getenv("DEMO_KEEP") != "1" {
		_ = os.RemoveAll(d.tmpDir)
		d.say("removed %s", d.tmpDir)
		return
	}
	// The binary is large and can be rebuilt; the rest is small.
	_ = os.Remove(filepath.Join(d.tmpDir, "csi-attacher"))
	d.say("kept %s (kubeconfig, attacher log)", d.tmpDir)
}

// fail prints the error and, if the attacher ran, the end of its log as it
// was when the failure was detected.
func (d *demo) fail(err error, logLines []string, logErr error) {
	d.println("")
	if errors.Is(err, errInterrupted) {
		d.println("Demo interrupted.")
		return
	}
	if d.attacher == nil {
		d.println("Demo failed: %v", err)
		return
	}
	d.println("Demo failed: %v; attacher log: %s", err, d.logPath)
	if logErr != nil {
		d.println("  (could not read the attacher log: %v)", logErr)
		return
	}
	d.println("Last %d lines of the attacher log before the demo stopped it:", len(logLines))
	for _, l := range logLines {
		d.println("  %s", l)
	}
}
