package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// attacherProc is the running attacher and its memory samples.
type attacherProc struct {
	*testbed.Attacher

	peakKiB  atomic.Int64 // highest VmHWM seen
	anonKiB  atomic.Int64 // highest RssAnon seen
	fileKiB  atomic.Int64 // highest RssFile seen
	stopping atomic.Bool
}

// buildAttacher runs `go build` in the background; the function it returns
// waits for the build.
func (b *bench) buildAttacher(ctx context.Context, root, bin string) func() error {
	version := "bench"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	b.rep.AttacherVersion = version
	wait := testbed.BuildAttacher(ctx, root, bin, "-ldflags", "-X main.version="+version)
	b.printf("==> building csi-attacher %s (go build -o %s ., in the background)", version, bin)
	return func() error {
		took, err := wait()
		if err != nil {
			return err
		}
		b.printf("    built in %.1f s", took.Seconds())
		b.setupPhase("build attacher", took, "in parallel with the control plane")
		return nil
	}
}

// startAttacher starts the attacher and waits until it is ready, leads and
// has started its controllers' workers.
func (b *bench) startAttacher(ctx context.Context, bin string) error {
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return err
	}
	var pprofFlags []string
	if b.cfg.cpuProfile != "" || b.cfg.allocProfile != "" {
		b.pprofAddr = lastFlag(b.cfg.attacherArgs, "pprof-bind-address")
		if b.pprofAddr == "" {
			ports, err := testbed.FreePorts(1)
			if err != nil {
				return err
			}
			b.pprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
			pprofFlags = []string{"--pprof-bind-address=" + b.pprofAddr}
		}
	}
	args := slices.Concat([]string{
		"--csi-address=" + filepath.Join(b.tmpDir, testbed.SocketName),
		"--kubeconfig=" + b.kubeconfig,
	}, endpoints.Flags(), pprofFlags, b.cfg.attacherArgs)
	readyz := endpoints.ReadyzURL()
	b.metricsURL = endpoints.MetricsURL()
	if lastFlag(b.cfg.attacherArgs, "metrics-addr") != "" {
		b.metricsURL = "" // moved or off: the allocation figures are left out
	}
	if addr := lastFlag(b.cfg.attacherArgs, "http-endpoint", "metrics-address"); addr != "" {
		// The reference-style single endpoint serves /readyz too.
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("cannot use --http-endpoint=%q: %w", addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		readyz = "http://" + net.JoinHostPort(host, port) + "/readyz"
		b.metricsURL = "http://" + net.JoinHostPort(host, port) + metricsPath(b.cfg.attacherArgs)
	}
	b.printf("==> starting csi-attacher %s", strings.Join(args, " "))
	b.printf("    attacher log: %s", b.logPath)

	logFile, err := os.Create(b.logPath)
	if err != nil {
		return fmt.Errorf("creating the attacher log: %w", err)
	}
	began := time.Now()
	started, err := testbed.StartAttacher(bin, args, logFile)
	if err != nil {
		return err
	}
	a := &attacherProc{Attacher: started}
	b.att = a
	go a.sample()
	b.defer_(b.stopAttacher)

	if err := b.waitUntil(ctx, "csi-attacher was not ready ("+readyz+")", 0, func() bool {
		return testbed.Ready(readyz)
	}); err != nil {
		return err
	}
	b.printf("    ready (%s) after %.1f s", readyz, time.Since(began).Seconds())

	if leaderElection(b.cfg.attacherArgs) {
		lease := leader.LeaseName(driverName)
		sel := fields.OneTermEqualSelector("metadata.name", lease).String()
		holder := ""
		if err := b.waitUntil(ctx, "csi-attacher did not acquire the Lease "+lease, 0, func() bool {
			list, err := b.cs.CoordinationV1().Leases(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				return false
			}
			for _, l := range list.Items {
				if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
					holder = l.Namespace + "/" + l.Name + " held by " + *l.Spec.HolderIdentity
					return true
				}
			}
			return false
		}); err != nil {
			return err
		}
		b.printf("    leading (Lease %s) after %.1f s", holder, time.Since(began).Seconds())
	}

	// The controllers start their workers once their caches have synced;
	// before that a VolumeAttachment would wait for the cache, not for the
	// attacher's work. A missing log line only costs a warning.
	if err := b.waitUntil(ctx, "", workersTimeout, func() bool { return workersStarted(b.logPath) }); err != nil {
		if ctx.Err() != nil {
			return err
		}
		b.printf("    warning: no \"Starting workers\" line for every controller in the attacher log after %s; going on", workersTimeout)
	} else {
		b.printf("    controllers started after %.1f s", time.Since(began).Seconds())
	}
	b.setupPhase("start attacher", time.Since(began), "until /readyz, the Lease and the controllers' workers")
	return nil
}

// waitUntil polls cond every 100 ms. It fails when ctx ends, when the
// attacher exits or, with a positive limit, after limit.
func (b *bench) waitUntil(ctx context.Context, what string, limit time.Duration, cond func() bool) error {
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-expired:
			return fmt.Errorf("%s within %s", what, limit)
		case <-b.att.Done():
			return fmt.Errorf("csi-attacher exited unexpectedly (%s) while waiting: %s", testbed.ExitStatus(b.att.Err()), what)
		case <-ctx.Done():
			if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
				return fmt.Errorf("%s: %w", what, cause)
			}
			return errInterrupted
		}
	}
	return nil
}

var controllerKey = regexp.MustCompile(`"controller":\s*"([^"]+)"`)

// workersStarted reports whether every controller that logged "Starting
// EventSource" has also logged "Starting workers" (controller-runtime's
// messages, in the text or the JSON format).
func workersStarted(logPath string) bool {
	f, err := os.Open(logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sources, workers := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var set map[string]bool
		switch {
		case strings.Contains(line, "Starting EventSource"):
			set = sources
		case strings.Contains(line, "Starting workers"):
			set = workers
		default:
			continue
		}
		name := ""
		if m := controllerKey.FindStringSubmatch(line); m != nil {
			name = m[1]
		}
		set[name] = true
	}
	if len(workers) == 0 {
		return false
	}
	for name := range sources {
		if !workers[name] {
			return false
		}
	}
	return true
}

// sample records the attacher's peak RSS until it exits.
func (a *attacherProc) sample() {
	tick := time.NewTicker(rssSampleEvery)
	defer tick.Stop()
	for {
		a.sampleMemory()
		select {
		case <-tick.C:
		case <-a.Done():
			return
		}
	}
}

// pid is the attacher's process ID, for its /proc files.
func (a *attacherProc) pid() int { return a.Cmd.Process.Pid }

// sampleMemory records one sample of the attacher's memory.
func (a *attacherProc) sampleMemory() {
	m, err := readMemory(a.pid())
	if err != nil {
		return
	}
	storeMax(&a.peakKiB, m.peak)
	storeMax(&a.anonKiB, m.anon)
	storeMax(&a.fileKiB, m.file)
}

// stopAttacher sends SIGTERM, waits up to attacherStopTimeout for the
// attacher to exit (then kills it) and records its exit and its totals.
func (b *bench) stopAttacher() {
	a := b.att
	if a == nil || !a.stopping.CompareAndSwap(false, true) {
		return
	}
	// A last sample before the process goes away.
	a.sampleMemory()
	began := time.Now()
	select {
	case <-a.Done():
		b.rep.AttacherExit = "had already exited: " + testbed.ExitStatus(a.Err())
	default:
		if a.Stop(attacherStopTimeout) {
			b.rep.AttacherExit = fmt.Sprintf("did not exit within %s of SIGTERM, killed", attacherStopTimeout)
		} else {
			b.rep.AttacherExit = testbed.ExitStatus(a.Err())
		}
	}
	b.rep.AttacherStopSeconds = seconds(time.Since(began))
	if ps := a.Cmd.ProcessState; ps != nil {
		b.rep.AttacherExitCode = ps.ExitCode()
		b.rep.AttacherCPUSeconds = round3((ps.UserTime() + ps.SystemTime()).Seconds())
		storeMax(&a.peakKiB, exitedPeakRSSKiB(ps))
	}
	b.rep.AttacherPeakRSSMiB = round1(float64(a.peakKiB.Load()) / 1024)
	b.rep.AttacherPeakAnonMiB = round1(float64(a.anonKiB.Load()) / 1024)
	b.rep.AttacherPeakFileMiB = round1(float64(a.fileKiB.Load()) / 1024)
	b.printf("csi-attacher stopped after %.1f s: %s", b.rep.AttacherStopSeconds, b.rep.AttacherExit)
}

// lastFlag returns the value of the last of the named flags in args
// ("-name=v", "--name=v", "-name v" or "--name v"), or "".
func lastFlag(args []string, names ...string) string {
	value := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, n := range names {
			if name != n {
				continue
			}
			if !hasValue && i+1 < len(args) {
				i++
				v = args[i]
			}
			value = v
		}
	}
	return value
}

// metricsPath is the attacher's --metrics-path on --http-endpoint.
func metricsPath(args []string) string {
	if p := lastFlag(args, "metrics-path"); p != "" {
		return p
	}
	return "/metrics"
}

// leaderElection reports whether the attacher runs with leader election
// (off by default, as in the reference) given its extra flags.
func leaderElection(args []string) bool {
	on := false
	for _, a := range args {
		if a == "--" {
			break
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "leader-election" || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasValue {
			on = true
			continue
		}
		if parsed, err := strconv.ParseBool(v); err == nil {
			on = parsed
		}
	}
	return on
}
