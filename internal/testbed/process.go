package testbed

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a program of the test bed (the attacher, the fake driver, a
// control-plane component) running as a subprocess.
type Process struct {
	// Name says which program it is, in messages.
	Name string
	// Cmd is the started command. Its ProcessState is set once Done is
	// closed.
	Cmd *exec.Cmd

	done chan struct{}
	err  error
}

// Start starts bin with args and the variables env added to this process's
// environment, in its own process group (see isolate), with its stdout and
// stderr going to out. It closes out when the process has
// exited, or at once if it cannot start, so that out can be its log file
// (or flush what it echoes) and the caller need not track the process to
// close it.
func Start(name, bin string, args []string, out io.WriteCloser, env ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited, so that callers can stop
// waiting for something it will never do.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit status (see ExitStatus), valid once Done is
// closed.
func (p *Process) Err() error { return p.err }

// Stop sends the process SIGTERM, which starts a graceful shutdown, and
// waits for it to exit; after timeout it kills it and reports killed. A
// process that has already exited makes it return at once.
func (p *Process) Stop(timeout time.Duration) (killed bool) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
		p.Kill()
		return true
	}
}

// Kill sends SIGKILL, as a crash or an OOM kill would end the process, and
// waits for it to exit.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}
