package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// formatCompare prints the runs side by side (one column per run), the
// CPU ratio, our checks and the BENCH_JSON line.
func formatCompare(r compareReport) (string, error) {
	var sb strings.Builder
	if len(r.Runs) == 0 {
		return "", fmt.Errorf("no run to report")
	}
	first := r.Runs[0]
	fmt.Fprintf(&sb, "\nResults side by side: N=%d, publish latency %s, unpublish latency %s, %d objects of another driver\n\n",
		r.N, first.PublishLatency, first.UnpublishLatency, first.OtherDriverObjects)
	phase := func(x report, name string) phaseResult {
		for _, p := range x.Phases {
			if p.Name == name {
				return p
			}
		}
		return phaseResult{}
	}
	perPhase := func(f func(phaseResult) string) func(report) string {
		return func(x report) string {
			return f(phase(x, "attach")) + " / " + f(phase(x, "detach")) + " / " + f(phase(x, "release"))
		}
	}
	latency := func(q func(*latencyStats) float64) func(phaseResult) string {
		return func(p phaseResult) string {
			if p.Latency == nil {
				return "-"
			}
			return fmt.Sprintf("%.2f", q(p.Latency))
		}
	}
	rows := []struct {
		name string
		f    func(report) string
	}{
		{"attach / detach / release (s)", perPhase(func(p phaseResult) string { return fmt.Sprintf("%.2f", p.Seconds) })},
		{"CPU s per 1000 volumes: attach / detach / release", perPhase(func(p phaseResult) string { return fmt.Sprintf("%.2f", p.AttacherCPUPer1000) })},
		{"CPU s per 1000 volumes, the three phases", func(x report) string { return fmt.Sprintf("%.2f", x.AttacherCPUPer1000) }},
		{"writes per attach / detach / release", perPhase(func(p phaseResult) string { return fmt.Sprintf("%.2f", p.WritesPerOp) })},
		{"failed writes", perPhase(func(p phaseResult) string { return fmt.Sprintf("%d", p.FailedWrites) })},
		{"duplicate CSI calls (publish / unpublish)", func(x report) string {
			return fmt.Sprintf("%d / %d", x.DuplicatePublish, x.DuplicateUnpublish)
		}},
		{"latency p50 (s)", perPhase(latency(func(l *latencyStats) float64 { return l.P50 }))},
		{"latency p99 (s)", perPhase(latency(func(l *latencyStats) float64 { return l.P99 }))},
		{"heap allocated per 1000 volumes (MiB)", func(x report) string {
			if x.AllocObjectsPer1000 == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", x.AllocMiBPer1000)
		}},
		{"peak RSS (anonymous + file) (MiB)", func(x report) string {
			return fmt.Sprintf("%.1f (%.1f + %.1f)", x.AttacherPeakRSSMiB, x.AttacherPeakAnonMiB, x.AttacherPeakFileMiB)
		}},
		{"CPU whole run (s)", func(x report) string { return fmt.Sprintf("%.2f", x.AttacherCPUSeconds) }},
		{"load average start / end", func(x report) string { return x.Machine.LoadAvgStart + " / " + x.Machine.LoadAvgEnd }},
	}
	sb.WriteString("| |")
	for _, x := range r.Runs {
		fmt.Fprintf(&sb, " %s |", x.Binary)
	}
	sb.WriteString("\n|---|")
	for range r.Runs {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&sb, "| %s |", row.name)
		for _, x := range r.Runs {
			fmt.Fprintf(&sb, " %s |", row.f(x))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&sb, "%s %s: %s\n", x.Binary, formatArgs(x.AttacherArgs), x.AttacherExit)
	}
	if total, ok := r.CPURatio["total"]; ok {
		fmt.Fprintf(&sb, "CPU per 1000 volumes, csi-attacher / reference: %.2fx (attach %.2fx, detach %.2fx, release %.2fx)\n",
			total, r.CPURatio["attach"], r.CPURatio["detach"], r.CPURatio["release"])
	}
	for i, x := range r.Runs {
		if x.Binary == oursName {
			fmt.Fprintf(&sb, "checks (csi-attacher, run %d): %s\n", i+1, formatChecks(x.Checks))
		}
	}
	sb.WriteString("(the reference's writes and duplicate calls are reported, not checked)\n")
	fmt.Fprintf(&sb, "machine: %d CPUs, %d MiB, %s, load average %s at the start, %s at the end\n",
		r.Machine.CPUs, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	data, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&sb, "BENCH_JSON %s\n", data)
	return sb.String(), nil
}
