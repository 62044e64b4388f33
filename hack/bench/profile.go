package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// profileSlice is the length of each piece of the CPU profile. Go's
// /debug/pprof/profile profiles for a time fixed by the request, and a
// phase's length is not known in advance: the profile is taken in
// back-to-back pieces and merged at the end, losing a few milliseconds
// between pieces.
const profileSlice = time.Second

// profiler takes the attacher's CPU profile while the phases run.
type profiler struct {
	url    string // the attacher's /debug/pprof/profile
	dir    string // where the pieces go
	cancel context.CancelFunc
	done   chan struct{}
	pieces []string
	err    error
}

// startProfile starts profiling the attacher, if -cpuprofile asks for it.
func (b *bench) startProfile(ctx context.Context) *profiler {
	if b.cfg.cpuProfile == "" || b.pprofAddr == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{
		url:    fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, int(profileSlice.Seconds())),
		dir:    filepath.Join(b.tmpDir, "profile"),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go p.run(ctx)
	return p
}

func (p *profiler) run(ctx context.Context) {
	defer close(p.done)
	if p.err = os.MkdirAll(p.dir, 0o755); p.err != nil {
		return
	}
	for ctx.Err() == nil {
		path := filepath.Join(p.dir, fmt.Sprintf("cpu-%04d.pb.gz", len(p.pieces)))
		// The last piece is let run to its end: a cancelled request
		// returns no profile.
		if err := fetch(context.WithoutCancel(ctx), p.url, path); err != nil {
			p.err = err
			return
		}
		p.pieces = append(p.pieces, path)
	}
}

// fetch saves the body of GET url to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading the attacher's CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("reading the attacher's CPU profile: %s: %s", resp.Status, msg)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// finish waits for the last piece and merges the pieces into out with
// `go tool pprof -proto`.
func (p *profiler) finish(out string) error {
	p.cancel()
	<-p.done
	if p.err != nil {
		return p.err
	}
	if len(p.pieces) == 0 {
		return errors.New("no CPU profile was taken")
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, p.pieces...)...)
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("merging the CPU profile: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
