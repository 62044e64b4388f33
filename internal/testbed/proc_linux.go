package testbed

import (
	"os/exec"
	"syscall"
)

// isolate puts the attacher in its own process group, so that Ctrl-C in the
// terminal reaches only the program that started it, which then stops the
// attacher in order (SIGTERM, graceful shutdown) before the control plane.
// If the program itself dies, the kernel sends the attacher SIGTERM.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
