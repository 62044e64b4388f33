package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// The throughput benchmark side by side (-reference-binary without -scale):
// the same attach, detach and release phases for our attacher and for the
// reference, each in a fresh control plane with the same objects, then one
// table of both and the ratio of their CPU. See doc.go.

const (
	oursName      = "csi-attacher"
	referenceName = "reference"
	// referenceStartLine is what the reference logs just before it waits
	// for its caches and starts its workers.
	referenceStartLine = "Starting CSI attacher"
)

// compareReport is the BENCH_JSON of a side-by-side run.
type compareReport struct {
	N    int      `json:"n"`
	Runs []report `json:"runs"`
	// CPURatio is our CPU per 1000 volumes over the reference's, each the
	// mean over its runs: per phase ("attach", "detach", "release") and for
	// the three together ("total").
	CPURatio map[string]float64 `json:"cpu_ratio"`
	Machine  machine            `json:"machine"`
}

// validateCompare checks the flags of a side-by-side run.
func (c config) validateCompare() error {
	switch {
	case c.cluster:
		return fmt.Errorf("-reference-binary runs with the throughput or the -scale benchmark, not with -cluster")
	case c.rounds < 1:
		return fmt.Errorf("-rounds must be at least 1, got %d", c.rounds)
	}
	if _, err := os.Stat(c.referenceBinary); err != nil {
		return fmt.Errorf("-reference-binary: %w", err)
	}
	return nil
}

// compareBinaries are the binaries of a side-by-side run: ours at ours, then
// the reference with its flags.
func compareBinaries(cfg config, ours string) []scaleBinary {
	args := referenceDefaultArgs
	if cfg.referenceArgs != "" {
		args = strings.Fields(cfg.referenceArgs)
	}
	return []scaleBinary{
		{name: oursName, path: ours, args: cfg.attacherArgs, ours: true},
		{name: referenceName, path: cfg.referenceBinary, args: args},
	}
}

// runCompare builds our attacher once, runs the phases for it and for the
// reference -rounds times, alternating, and prints them side by side. The
// checks (writes per operation, duplicate calls) apply to ours only: the
// reference's figures are reported, never checked.
func runCompare(ctx context.Context, cfg config) (compareReport, error) {
	// envtest logs through controller-runtime; without a logger it
	// complains, with a stack trace, from the second control plane on.
	ctrllog.SetLogger(logr.Discard())
	rep := compareReport{N: cfg.n, Machine: machineInfo()}
	root, err := testbed.RepoRoot()
	if err != nil {
		return rep, err
	}
	dir, err := testbed.TempDir("csi-bench-compare")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)
	ours := filepath.Join(dir, oursName)
	fmt.Printf("==> building csi-attacher (go build -o %s .)\n", ours)
	if _, err := testbed.BuildAttacher(ctx, root, ours)(); err != nil {
		return rep, err
	}
	for round := range cfg.rounds {
		for _, bin := range compareBinaries(cfg, ours) {
			fmt.Printf("\n==> round %d/%d: %s\n", round+1, cfg.rounds, bin.name)
			b := newBench(cfg)
			b.bin, b.compare = bin, true
			b.cfg.attacherArgs = bin.args
			err := b.run(ctx)
			if err != nil {
				if ctx.Err() != nil {
					err = errInterrupted
				}
				failure := b.failure(err)
				b.cleanup(false)
				fmt.Print(failure)
				return rep, fmt.Errorf("%s: %w", bin.name, err)
			}
			b.cleanup(true)
			b.rep.Binary = bin.name
			rep.Runs = append(rep.Runs, b.rep)
		}
	}
	rep.CPURatio = cpuRatios(rep.Runs)
	rep.Machine.LoadAvgEnd = loadAvg()
	out, err := formatCompare(rep)
	if err != nil {
		return rep, err
	}
	fmt.Print(out)
	if cfg.jsonPath != "" {
		data, err := json.Marshal(rep)
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(cfg.jsonPath, append(data, '\n'), 0o644); err != nil {
			return rep, fmt.Errorf("writing %s: %w", cfg.jsonPath, err)
		}
	}
	if failed := compareChecks(rep); failed != "" && cfg.check {
		return rep, fmt.Errorf("checks failed: %s", failed)
	}
	return rep, nil
}

// binary returns the attacher binary to run and a function that waits until
// it is built: ours, built in dir in the background, or the one given.
func (b *bench) binary(ctx context.Context, dir string) (string, func() error, error) {
	if b.bin.path != "" {
		if b.bin.ours {
			b.rep.AttacherVersion = "bench"
		} else {
			b.rep.AttacherVersion = "reference " + filepath.Base(b.bin.path)
		}
		b.rep.AttacherArgs = b.bin.args
		return b.bin.path, func() error { return nil }, nil
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, oursName)
	return bin, b.buildAttacher(ctx, root, bin), nil
}

// start starts the attacher and waits until it can serve. In a side-by-side
// run both binaries are then let go idle, so that the work of their start
// (listing the objects, a first pass over the PVs) is not counted in the
// attach phase of either.
func (b *bench) start(ctx context.Context, bin string) error {
	if b.bin.path == "" || b.bin.ours {
		if err := b.startAttacher(ctx, bin); err != nil {
			return err
		}
	} else if err := b.startReference(ctx, bin); err != nil {
		return err
	}
	if !b.compare {
		return nil
	}
	began := time.Now()
	if _, err := b.waitIdle(ctx); err != nil {
		return err
	}
	b.printf("    idle after another %.1f s", time.Since(began).Seconds())
	return nil
}

// startReference starts the reference attacher with its HTTP endpoint (its
// /metrics, for the allocation figures) and waits until the endpoint
// answers and it has logged that it starts its controller. It logs no line
// when its caches have synced; start then waits until it is idle.
func (b *bench) startReference(ctx context.Context, bin string) error {
	ports, err := testbed.FreePorts(1)
	if err != nil {
		return err
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := slices.Concat([]string{
		"--csi-address=" + filepath.Join(b.tmpDir, testbed.SocketName),
		"--kubeconfig=" + b.kubeconfig,
		"--http-endpoint=" + endpoint,
	}, b.bin.args)
	b.metricsURL = "http://" + endpoint + metricsPath(b.bin.args)
	b.printf("==> starting the reference %s %s", bin, strings.Join(args, " "))
	b.printf("    log: %s", b.logPath)
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return fmt.Errorf("creating the reference's log: %w", err)
	}
	began := time.Now()
	started, err := testbed.StartAttacher(bin, args, logFile)
	if err != nil {
		return err
	}
	b.att = &attacherProc{Attacher: started}
	go b.att.sample()
	b.defer_(b.stopAttacher)
	if err := b.waitUntil(ctx, "the reference's "+b.metricsURL+" did not answer", 0, func() bool {
		return testbed.Ready(b.metricsURL)
	}); err != nil {
		return err
	}
	if err := b.waitUntil(ctx, "", workersTimeout, func() bool { return logHas(b.logPath, referenceStartLine) }); err != nil {
		if ctx.Err() != nil {
			return err
		}
		b.printf("    warning: no %q line in the reference's log after %s; going on", referenceStartLine, workersTimeout)
	}
	b.printf("    started after %.1f s", time.Since(began).Seconds())
	b.setupPhase("start attacher", time.Since(began), "until its /metrics answers and it starts its controller")
	return nil
}

// logHas reports whether the file at path contains s.
func logHas(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(data), s)
}

// cpuRatios divides our mean CPU per 1000 volumes by the reference's, per
// phase and in total; a figure missing on either side is left out.
func cpuRatios(runs []report) map[string]float64 {
	type sum struct {
		v float64
		n int
	}
	sums := map[string]map[string]*sum{}
	add := func(bin, key string, v float64) {
		if sums[bin] == nil {
			sums[bin] = map[string]*sum{}
		}
		if sums[bin][key] == nil {
			sums[bin][key] = &sum{}
		}
		sums[bin][key].v += v
		sums[bin][key].n++
	}
	for _, r := range runs {
		for _, p := range r.Phases {
			add(r.Binary, p.Name, p.AttacherCPUPer1000)
		}
		add(r.Binary, "total", r.AttacherCPUPer1000)
	}
	out := map[string]float64{}
	for key, o := range sums[oursName] {
		ref := sums[referenceName][key]
		if ref == nil || ref.v <= 0 || o.n == 0 {
			continue
		}
		out[key] = round3((o.v / float64(o.n)) / (ref.v / float64(ref.n)))
	}
	return out
}

// compareChecks runs the checks of our runs only and names the failed ones.
func compareChecks(r compareReport) string {
	var failed []string
	for i, x := range r.Runs {
		if x.Binary != oursName {
			continue
		}
		if f := failedChecks(x.Checks); f != "" {
			failed = append(failed, fmt.Sprintf("run %d: %s", i+1, f))
		}
	}
	return strings.Join(failed, "; ")
}
