package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// buildAttacher runs `go build` in the background; the function it returns
// waits for the build and prints how long it took. If the demo ends first,
// cleanup stops the build.
func (d *demo) buildAttacher(ctx context.Context, root, bin string) func() error {
	buildCtx, cancel := context.WithCancel(ctx)
	wait := testbed.BuildAttacher(buildCtx, root, bin)
	d.defer_(func() {
		cancel()
		_, _ = wait()
	})
	return func() error {
		took, err := wait()
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case err != nil:
			return err
		}
		d.detail("built in %s", took.Round(10*time.Millisecond))
		return nil
	}
}

// startAttacher starts the attacher binary and waits for its /readyz.
func (d *demo) startAttacher(ctx context.Context, bin, kubeconfig string) error {
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return err
	}
	readyz := endpoints.ReadyzURL()
	d.metricsURL = endpoints.MetricsURL()
	args := slices.Concat([]string{
		"--csi-address=" + filepath.Join(d.tmpDir, testbed.SocketName),
		"--kubeconfig=" + kubeconfig,
		"--leader-election=false",
	}, endpoints.Flags(), []string{"--v=2"})
	d.step("starting csi-attacher %s", strings.Join(args, " "))
	d.detail("attacher log: %s", d.logPath)

	logFile, err := os.Create(d.logPath)
	if err != nil {
		return fmt.Errorf("creating the attacher log: %w", err)
	}
	var out io.WriteCloser = logFile
	if d.verbose {
		out = &echoLog{file: logFile, echo: &lineWriter{line: func(s string) { d.detail("attacher: %s", s) }}}
	}
	began := time.Now()
	a, err := testbed.StartAttacher(bin, args, out)
	if err != nil {
		return err
	}
	d.attacher = a
	d.attacherDone = a.Done()
	d.defer_(d.stopAttacher)

	err = d.waitFor(ctx, "csi-attacher was not ready (/readyz) within "+stepTimeout.String(), func() bool {
		return testbed.Ready(readyz)
	})
	if err != nil {
		return err
	}
	d.detail("attacher ready (%s returned 200 after %s)", readyz, since(began))
	return nil
}

// stopAttacher sends SIGTERM and waits for the attacher's graceful shutdown.
func (d *demo) stopAttacher() {
	select {
	case <-d.attacherDone:
		d.say("csi-attacher had already exited: %s", testbed.ExitStatus(d.attacher.Err()))
		return
	default:
	}
	d.say("stopping csi-attacher (SIGTERM)")
	began := time.Now()
	if d.attacher.Stop(attacherStopTimeout) {
		d.say("csi-attacher did not stop within %s, killing it", attacherStopTimeout)
	}
	d.say("csi-attacher stopped after %s: %s", since(began), testbed.ExitStatus(d.attacher.Err()))
}

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// echoLog writes the attacher's output to its log file and echoes every
// line (DEMO_VERBOSE=1). Close, when the attacher has exited, echoes an
// unterminated last line and closes the file.
type echoLog struct {
	file *os.File
	echo *lineWriter
}

func (l *echoLog) Write(p []byte) (int, error) {
	return io.MultiWriter(l.file, l.echo).Write(p)
}

func (l *echoLog) Close() error {
	l.echo.flush()
	return l.file.Close()
}
