package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// formatScale prints the runs side by side, then the details and the
// BENCH_JSON line.
func formatScale(r scaleReport) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nResults: %d attached VolumeAttachments on %d nodes before the start, %d pending, %d new right after the start, %d detaches, %d of another driver\n\n",
		r.Existing, r.Nodes, r.Pending, r.New, r.Detach, r.Foreign)
	rows := []struct {
		name string
		f    func(scaleRun) string
	}{
		{fmt.Sprintf("%d new: first / all attached after start (s)", r.New), func(x scaleRun) string {
			return fmt.Sprintf("%.2f / %.2f", x.NewFirstSeconds, x.NewAllSeconds)
		}},
		{fmt.Sprintf("%d pending: oldest / all attached after start (s)", r.Pending), func(x scaleRun) string {
			return fmt.Sprintf("%.2f / %.2f", x.PendingOldestSecond, x.PendingAllSeconds)
		}},
		{"idle after start (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.IdleSeconds) }},
		{"CPU start to idle (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.StartCPUSeconds) }},
		{"writes start to idle / beyond 3 per attach", func(x scaleRun) string {
			return fmt.Sprintf("%d / %d", x.StartWrites, x.ExcessWrites)
		}},
		{"existing objects modified", func(x scaleRun) string { return fmt.Sprintf("%d", x.ExistingModified) }},
		{"CSI calls on existing (publish / unpublish / other)", func(x scaleRun) string {
			c := x.CSIByClass[classExisting]
			pub, unpub := c[fake.MethodPublish], c[fake.MethodUnpublish]
			other := 0
			for m, n := range c {
				if m != fake.MethodPublish && m != fake.MethodUnpublish {
					other += n
				}
			}
			return fmt.Sprintf("%d / %d / %d", pub, unpub, other)
		}},
		{fmt.Sprintf("%d detaches (s)", r.Detach), func(x scaleRun) string { return fmt.Sprintf("%.2f", x.DetachSeconds) }},
		{"writes per detach", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.WritesPerDetach) }},
		{"CPU detaches (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.DetachCPU) }},
		{"CPU whole run (s)", func(x scaleRun) string { return fmt.Sprintf("%.2f", x.CPUSeconds) }},
		{"peak RSS (MiB)", func(x scaleRun) string { return fmt.Sprintf("%.1f", x.PeakRSSMiB) }},
		{"duplicate CSI calls", func(x scaleRun) string { return fmt.Sprintf("%d", x.Duplicates) }},
		{"load average start / end", func(x scaleRun) string { return x.LoadStart + " / " + x.LoadEnd }},
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
		fmt.Fprintf(&sb, "%s %s\n", x.Binary, formatArgs(x.Args))
		if x.WorkersSeconds > 0 {
			fmt.Fprintf(&sb, "  controllers' workers started after %.2f s\n", x.WorkersSeconds)
		}
		fmt.Fprintf(&sb, "  writes start to idle: %s\n", formatCounts(x.StartWritesBy))
		fmt.Fprintf(&sb, "  reads start to idle:  %s (a WATCH counts when it ends)\n", formatCounts(x.StartReads))
		fmt.Fprintf(&sb, "  access reviews:       %s\n", formatCounts(x.StartReviews))
		fmt.Fprintf(&sb, "  detach writes:        %s\n", formatCounts(x.DetachWritesBy))
		classes := slices.Sorted(maps.Keys(x.CSIByClass))
		for _, c := range classes {
			fmt.Fprintf(&sb, "  CSI calls (%s):        %s\n", className(c), formatCounts(x.CSIByClass[c]))
		}
		fmt.Fprintf(&sb, "  CSI calls (no volume): %s\n", formatCounts(x.CSIOther))
		fmt.Fprintf(&sb, "  foreign objects modified: %d; exit: %s; setup %.1f s\n", x.ForeignModified, x.Exit, x.SetupSecs)
		for _, w := range x.Warnings {
			fmt.Fprintf(&sb, "  warning: %s\n", w)
		}
	}
	fmt.Fprintf(&sb, "machine: %d CPUs, %d MiB, %s, load average %s at the start, %s at the end\n",
		r.Machine.CPUs, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	if data, err := json.Marshal(r); err == nil {
		fmt.Fprintf(&sb, "BENCH_JSON %s\n", data)
	}
	return sb.String()
}

func className(c string) string {
	switch c {
	case classExisting:
		return "existing"
	case classPending:
		return "pending"
	case classNew:
		return "new"
	case classForeign:
		return "foreign"
	}
	return c
}

// scaleChecks verifies, for our attacher only, that the existing attached
// objects cost no write and no CSI call, that a detach costs one write and
// that no CSI call was a duplicate.
func scaleChecks(r scaleReport) string {
	var failed []string
	for _, x := range r.Runs {
		if x.Binary != "csi-attacher" {
			continue
		}
		if x.ExistingModified > 0 {
			failed = append(failed, fmt.Sprintf("%d existing objects modified before the detaches (want 0)", x.ExistingModified))
		}
		if n := x.CSIByClass[classExisting][fake.MethodPublish]; n > 0 {
			failed = append(failed, fmt.Sprintf("%d ControllerPublishVolume calls for existing attachments (want 0)", n))
		}
		if x.WritesPerDetach > 1 {
			failed = append(failed, fmt.Sprintf("%.3f writes per detach (at most 1)", x.WritesPerDetach))
		}
		if x.Duplicates > 0 {
			failed = append(failed, fmt.Sprintf("%d duplicate CSI calls (want 0)", x.Duplicates))
		}
	}
	return strings.Join(failed, "; ")
}
