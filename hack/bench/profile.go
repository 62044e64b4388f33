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

// profiles are the profiles the phases are taken in: the CPU profile
// being taken, and the allocation profile at the start.
type profiles struct {
	cpu         *profiler
	allocsStart string
}

// startProfile starts the profiles -cpuprofile and -allocprofile ask for.
func (b *bench) startProfile(ctx context.Context) (profiles, error) {
	var ps profiles
	if b.pprofAddr == "" {
		return ps, nil
	}
	dir := filepath.Join(b.tmpDir, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ps, err
	}
	if b.cfg.allocProfile != "" {
		ps.allocsStart = filepath.Join(dir, "allocs-start.pb.gz")
		if err := fetch(ctx, b.pprofURL("allocs"), ps.allocsStart); err != nil {
			return ps, err
		}
	}
	if b.cfg.cpuProfile != "" {
		ctx, cancel := context.WithCancel(ctx)
		ps.cpu = &profiler{
			url:    fmt.Sprintf("%s?seconds=%d", b.pprofURL("profile"), int(profileSlice.Seconds())),
			dir:    dir,
			cancel: cancel,
			done:   make(chan struct{}),
		}
		go ps.cpu.run(ctx)
	}
	return ps, nil
}

// pprofURL is the attacher's /debug/pprof/<name>.
func (b *bench) pprofURL(name string) string {
	return "http://" + b.pprofAddr + "/debug/pprof/" + name
}

// finishProfile writes the profiles: the CPU profile's pieces merged, and
// the allocations since the start.
func (b *bench) finishProfile(ctx context.Context, ps profiles) error {
	if ps.cpu != nil {
		if err := ps.cpu.finish(b.cfg.cpuProfile); err != nil {
			return err
		}
		b.printf("attacher CPU profile of the three phases: %s (go tool pprof -top %s)", b.cfg.cpuProfile, b.cfg.cpuProfile)
	}
	if ps.allocsStart != "" {
		end := filepath.Join(filepath.Dir(ps.allocsStart), "allocs-end.pb.gz")
		if err := fetch(ctx, b.pprofURL("allocs"), end); err != nil {
			return err
		}
		if err := pprofTool(b.cfg.allocProfile, "-base", ps.allocsStart, end); err != nil {
			return fmt.Errorf("writing the allocation profile: %w", err)
		}
		b.printf("attacher allocation profile of the three phases: %s (go tool pprof -sample_index=alloc_space -top %s)", b.cfg.allocProfile, b.cfg.allocProfile)
	}
	return nil
}

func (p *profiler) run(ctx context.Context) {
	defer close(p.done)
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

// finish waits for the last piece and merges the pieces into out.
func (p *profiler) finish(out string) error {
	p.cancel()
	<-p.done
	if p.err != nil {
		return p.err
	}
	if len(p.pieces) == 0 {
		return errors.New("no CPU profile was taken")
	}
	if err := pprofTool(out, p.pieces...); err != nil {
		return fmt.Errorf("merging the CPU profile: %w", err)
	}
	return nil
}

// pprofTool writes `go tool pprof -proto args...` to out.
func pprofTool(out string, args ...string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
