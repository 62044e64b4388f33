//go:build !linux

package main

import "os/exec"

// isolate does nothing outside Linux: the attacher stays in the demo's
// process group and receives Ctrl-C along with it.
func isolate(*exec.Cmd) {}
