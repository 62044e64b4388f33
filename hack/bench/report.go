package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// report is everything the benchmark measured; it is printed as the
// BENCH_JSON line. Durations are in seconds.
type report struct {
	// Binary is "csi-attacher" or "reference" in a side-by-side run.
	Binary             string   `json:"binary,omitempty"`
	N                  int      `json:"n"`
	PublishLatency     string   `json:"publish_latency"`
	UnpublishLatency   string   `json:"unpublish_latency"`
	OtherDriverObjects int      `json:"other_driver_objects"`
	AttacherArgs       []string `json:"attacher_args"`
	AttacherVersion    string   `json:"attacher_version"`

	// The headline figures, repeated from Phases for scripts.
	AttachSeconds    float64       `json:"attach_seconds"`
	DetachSeconds    float64       `json:"detach_seconds"`
	ReleaseSeconds   float64       `json:"release_seconds"`
	WritesPerAttach  float64       `json:"writes_per_attach"`
	WritesPerDetach  float64       `json:"writes_per_detach"`
	WritesPerRelease float64       `json:"writes_per_release"`
	AttachLatency    *latencyStats `json:"attach_latency"`

	CSICalls           map[string]int `json:"csi_calls"`
	CSIFailedCalls     map[string]int `json:"csi_failed_calls"`
	DuplicatePublish   int            `json:"duplicate_publish"`
	DuplicateUnpublish int            `json:"duplicate_unpublish"`
	StillPublished     int            `json:"still_published"`
	AttachErrors       int            `json:"vas_with_attach_error"`
	DetachErrors       int            `json:"vas_with_detach_error"`

	AttacherPeakRSSMiB float64 `json:"attacher_peak_rss_mib"`
	// AttacherPeakAnonMiB is the highest RssAnon sampled: the process's own
	// memory (heap, stacks), which is what grows with the volumes.
	AttacherPeakAnonMiB float64 `json:"attacher_peak_anon_mib"`
	// AttacherPeakFileMiB is the highest RssFile sampled: the mapped
	// binary, a fixed cost of its code size.
	AttacherPeakFileMiB float64 `json:"attacher_peak_file_mib"`
	AttacherCPUSeconds  float64 `json:"attacher_cpu_seconds"`
	// AttacherCPUPer1000 is the attacher's CPU seconds (user+system) in
	// the three measured phases together, per 1000 volumes: what one
	// attach, detach and release cycle of 1000 volumes costs it.
	AttacherCPUPer1000 float64 `json:"attacher_cpu_seconds_per_1000_volumes"`
	// AllocMiBPer1000 and AllocObjectsPer1000 are the attacher's heap
	// allocations in the three phases, per 1000 volumes.
	AllocMiBPer1000     float64 `json:"attacher_alloc_mib_per_1000_volumes"`
	AllocObjectsPer1000 float64 `json:"attacher_alloc_objects_per_1000_volumes"`
	AttacherExit        string  `json:"attacher_exit"`
	AttacherExitCode    int     `json:"attacher_exit_code"`
	AttacherStopSeconds float64 `json:"attacher_stop_seconds"`

	// Checks are the guarantees the run verified (see checks); with
	// -check, a failed one fails the run.
	Checks       []checkResult `json:"checks"`
	Setup        []setupResult `json:"setup"`
	Phases       []phaseResult `json:"phases"`
	Machine      machine       `json:"machine"`
	TotalSeconds float64       `json:"total_seconds"`
}

// checkResult is one verified guarantee: value must not exceed limit.
type checkResult struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	OK    bool    `json:"ok"`
}

type setupResult struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Note    string  `json:"note,omitempty"`
}

type phaseResult struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// RequestsSeconds is when the benchmark's last create or delete of the
	// phase returned, from the phase's start.
	RequestsSeconds float64 `json:"requests_seconds"`
	Ops             int     `json:"ops"`
	// The attacher's writes (all writes minus the benchmark's own and the
	// background Lease writes), including failed ones.
	WritesPerOp        float64        `json:"writes_per_op"`
	Writes             int            `json:"writes"`
	WritesByRequest    map[string]int `json:"writes_by_request"`
	FailedWrites       int            `json:"failed_writes"`
	FailedByRequest    map[string]int `json:"failed_writes_by_request"`
	BackgroundWrites   map[string]int `json:"background_writes"`
	OwnRequests        map[string]int `json:"benchmark_requests"`
	Reads              int            `json:"reads"`
	ReadsByRequest     map[string]int `json:"reads_by_request"`
	TerminatedWatchers map[string]int `json:"terminated_watchers,omitempty"`
	CSICalls           map[string]int `json:"csi_calls"`
	DuplicatePublish   int            `json:"duplicate_publish"`
	DuplicateUnpublish int            `json:"duplicate_unpublish"`
	AttacherCPUSeconds float64        `json:"attacher_cpu_seconds"`
	AttacherCPUPer1000 float64        `json:"attacher_cpu_seconds_per_1000_volumes"`
	// The attacher's heap allocations per 1000 volumes (its Go runtime
	// metrics): they follow its CPU, but not the machine's load.
	AllocMiBPer1000      float64       `json:"attacher_alloc_mib_per_1000_volumes"`
	AllocObjectsPer1000  float64       `json:"attacher_alloc_objects_per_1000_volumes"`
	SystemCPUBusyPercent float64       `json:"system_cpu_busy_percent"`
	Latency              *latencyStats `json:"latency"`
	Warnings             []string      `json:"warnings,omitempty"`
}

// latencyStats are per-operation latencies in seconds.
type latencyStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

type machine struct {
	CPUs         int    `json:"cpus"`
	MemTotalMiB  int64  `json:"mem_total_mib"`
	GOOS         string `json:"goos"`
	GOARCH       string `json:"goarch"`
	GoVersion    string `json:"go_version"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// computeLatency computes nearest-rank percentiles.
func computeLatency(ds []time.Duration) *latencyStats {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return seconds(ds[min(max(i, 0), len(ds)-1)])
	}
	return &latencyStats{Count: len(ds), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: seconds(ds[len(ds)-1])}
}

// summarize fills the run's totals and headline figures from its phases
// and evaluates the checks.
func (r *report) summarize() {
	cpu, allocMiB, allocObjects := 0.0, 0.0, 0.0
	for _, p := range r.Phases {
		cpu += p.AttacherCPUSeconds
		allocMiB += p.AllocMiBPer1000
		allocObjects += p.AllocObjectsPer1000
		switch p.Name {
		case "attach":
			r.AttachSeconds, r.WritesPerAttach, r.AttachLatency = p.Seconds, p.WritesPerOp, p.Latency
		case "detach":
			r.DetachSeconds, r.WritesPerDetach = p.Seconds, p.WritesPerOp
		case "release":
			r.ReleaseSeconds, r.WritesPerRelease = p.Seconds, p.WritesPerOp
		}
	}

	r.AttacherCPUPer1000 = per1000(cpu, r.N)
	r.AllocMiBPer1000, r.AllocObjectsPer1000 = round3(allocMiB), round3(allocObjects)
	r.Checks = checks(r)
}

// printReport prints the table, the details and the BENCH_JSON line.
func (b *bench) printReport() error {
	r := &b.rep
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nResults: N=%d, publish latency %s, unpublish latency %s, %d objects of another driver, attacher %s %s\n",
		r.N, r.PublishLatency, r.UnpublishLatency, r.OtherDriverObjects, r.AttacherVersion, formatArgs(r.AttacherArgs))
	setup := make([]string, 0, len(r.Setup))
	for _, s := range r.Setup {
		item := fmt.Sprintf("%s %.1f s", s.Name, s.Seconds)
		if s.Note != "" {
			item += " (" + s.Note + ")"
		}
		setup = append(setup, item)
	}
	fmt.Fprintf(&sb, "setup: %s\n\n", strings.Join(setup, ", "))

	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tseconds\trequests sent s\twrites/op\tfailed writes\treads\tCSI calls\tdup calls\tattacher CPU s\tCPU s/1000 vol\tmachine busy\tp50 s\tp90 s\tp99 s\tmax s\t")
	for _, p := range r.Phases {
		lat := []string{"-", "-", "-", "-"}
		if l := p.Latency; l != nil {
			lat = []string{f3(l.P50), f3(l.P90), f3(l.P99), f3(l.Max)}
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t%d\t%.2f\t%.2f\t%.0f%%\t%s\t%s\t%s\t%s\t\n",
			p.Name, p.Seconds, p.RequestsSeconds, p.WritesPerOp, p.FailedWrites, p.Reads, formatCSI(p.CSICalls),
			p.DuplicatePublish+p.DuplicateUnpublish, p.AttacherCPUSeconds, p.AttacherCPUPer1000, p.SystemCPUBusyPercent,
			lat[0], lat[1], lat[2], lat[3])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sb.WriteString("(latency: attach = create request to status.attached seen; detach = delete request to VolumeAttachment gone; release = delete request to PV gone)\n\n")

	fmt.Fprintf(&sb, "CSI calls: %s; failed: %s\n", formatCounts(r.CSICalls), formatCounts(r.CSIFailedCalls))
	fmt.Fprintf(&sb, "duplicate ControllerPublishVolume: %d, duplicate ControllerUnpublishVolume: %d, volumes still published at the end: %d\n",
		r.DuplicatePublish, r.DuplicateUnpublish, r.StillPublished)
	fmt.Fprintf(&sb, "VolumeAttachments that showed an attachError: %d, a detachError: %d\n", r.AttachErrors, r.DetachErrors)
	fmt.Fprintf(&sb, "csi-attacher CPU (user+system): %.2f s per 1000 volumes for attach, detach and release (%s)\n",
		r.AttacherCPUPer1000, formatPhaseCPU(r.Phases))
	if r.AllocObjectsPer1000 > 0 {
		fmt.Fprintf(&sb, "csi-attacher heap allocations: %.1f MiB, %.0f objects per 1000 volumes (%s)\n",
			r.AllocMiBPer1000, r.AllocObjectsPer1000, formatPhaseAlloc(r.Phases))
	}
	fmt.Fprintf(&sb, "checks: %s\n", formatChecks(r.Checks))
	fmt.Fprintf(&sb, "csi-attacher: peak RSS %.1f MiB (peak anonymous %.1f MiB, peak file-backed %.1f MiB), CPU %.2f s (whole run), %s, %.1f s after SIGTERM\n",
		r.AttacherPeakRSSMiB, r.AttacherPeakAnonMiB, r.AttacherPeakFileMiB, r.AttacherCPUSeconds, r.AttacherExit, r.AttacherStopSeconds)
	fmt.Fprintf(&sb, "machine: %d CPUs, %d MiB, %s %s/%s, load average %s at the start, %s at the end; total %.1f s\n",
		r.Machine.CPUs, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.GOOS, r.Machine.GOARCH,
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.TotalSeconds)
	for _, p := range r.Phases {
		for _, w := range p.Warnings {
			fmt.Fprintf(&sb, "warning (%s): %s\n", p.Name, w)
		}
		if b.cfg.verbose {
			fmt.Fprintf(&sb, "\n%s: API requests beyond the benchmark's own (%s)\n", p.Name, formatCounts(p.OwnRequests))
			fmt.Fprintf(&sb, "  writes:             %s\n", formatCounts(p.WritesByRequest))
			fmt.Fprintf(&sb, "  failed writes:      %s\n", formatCounts(p.FailedByRequest))
			fmt.Fprintf(&sb, "  background writes:  %s (not counted)\n", formatCounts(p.BackgroundWrites))
			fmt.Fprintf(&sb, "  reads:              %s\n", formatCounts(p.ReadsByRequest))
			fmt.Fprintf(&sb, "  watchers closed by the API server (too slow): %s\n", formatCounts(p.TerminatedWatchers))
			fmt.Fprintf(&sb, "  CSI calls:          %s\n", formatCounts(p.CSICalls))
		}
	}
	fmt.Print(sb.String())

	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if b.cfg.jsonPath != "" {
		if err := os.WriteFile(b.cfg.jsonPath, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", b.cfg.jsonPath, err)
		}
	}
	fmt.Printf("BENCH_JSON %s\n", data)
	return nil
}

// writeFloor is the fewest API writes per operation that keep the
// reference's guarantees, and the most the attacher may send: the PV
// finalizer, the VolumeAttachment's finalizer and node ID, and its status
// per attach; the VolumeAttachment's finalizer per detach; the PV's
// finalizer per release.
var writeFloor = map[string]float64{"attach": 3, "detach": 1, "release": 1}

// checks verifies the write floor of each phase and that no CSI call was
// repeated.
func checks(r *report) []checkResult {
	var out []checkResult
	for _, p := range r.Phases {
		if limit, ok := writeFloor[p.Name]; ok {
			// writes_per_op is rounded to 3 decimals: a single extra write
			// in 1000 operations still shows.
			out = append(out, checkResult{Name: "writes per " + p.Name, Value: p.WritesPerOp, Limit: limit, OK: p.WritesPerOp <= limit})
		}
	}
	dup := float64(r.DuplicatePublish + r.DuplicateUnpublish)
	out = append(out, checkResult{Name: "duplicate CSI calls", Value: dup, OK: dup == 0})
	return out
}

// failedChecks names the checks that failed, or "".
func failedChecks(cs []checkResult) string {
	var failed []string
	for _, c := range cs {
		if !c.OK {
			failed = append(failed, fmt.Sprintf("%s %g (at most %g)", c.Name, c.Value, c.Limit))
		}
	}
	return strings.Join(failed, ", ")
}

func formatChecks(cs []checkResult) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		verdict := "ok"
		if !c.OK {
			verdict = "FAILED"
		}
		parts = append(parts, fmt.Sprintf("%s %g (at most %g) %s", c.Name, c.Value, c.Limit, verdict))
	}
	return strings.Join(parts, "; ")
}

// formatPhaseCPU shows each phase's share of the attacher's CPU per 1000
// volumes.
func formatPhaseCPU(phases []phaseResult) string {
	parts := make([]string, 0, len(phases))
	for _, p := range phases {
		parts = append(parts, fmt.Sprintf("%s %.2f", p.Name, p.AttacherCPUPer1000))
	}
	return strings.Join(parts, " + ")
}

// formatPhaseAlloc shows each phase's allocations per 1000 volumes.
func formatPhaseAlloc(phases []phaseResult) string {
	parts := make([]string, 0, len(phases))
	for _, p := range phases {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", p.Name, p.AllocMiBPer1000))
	}
	return strings.Join(parts, " + ")
}

// per1000 normalises seconds spent on n volumes to 1000 volumes.
func per1000(seconds float64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return round3(seconds * 1000 / float64(n))
}

// formatCSI shows the publish and unpublish calls of a phase.
func formatCSI(calls map[string]int) string {
	var parts []string
	if n := calls[fake.MethodPublish]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d publish", n))
	}
	if n := calls[fake.MethodUnpublish]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d unpublish", n))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func formatArgs(args []string) string {
	if len(args) == 0 {
		return "(default flags)"
	}
	return strings.Join(args, " ")
}

func f3(v float64) string { return fmt.Sprintf("%.3f", v) }

func seconds(d time.Duration) float64 { return round3(d.Seconds()) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func round1(v float64) float64 { return math.Round(v*10) / 10 }
