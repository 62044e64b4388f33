package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// println prints a line without a time stamp.
func (d *demo) println(format string, args ...any) {
	d.out.Lock()
	defer d.out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// stamped prints a line after the time since the demo started.
func (d *demo) stamped(format string, args ...any) {
	d.stampedAt(time.Now(), format, args...)
}

// stampedAt prints a line after the time from the start of the demo to at.
func (d *demo) stampedAt(at time.Time, format string, args ...any) {
	elapsed := at.Sub(d.start).Seconds()
	d.out.Lock()
	defer d.out.Unlock()
	fmt.Printf("[%6.2fs] %s\n", elapsed, fmt.Sprintf(format, args...))
}

// step starts a section.
func (d *demo) step(format string, args ...any) { d.stamped("==> "+format, args...) }

// detail is a line inside a section.
func (d *demo) detail(format string, args ...any) { d.stamped("    "+format, args...) }

// say is a plain progress line.
func (d *demo) say(format string, args ...any) { d.detail(format, args...) }

// event prints a change of one of the watched objects, stamped with the
// arrival of the event being applied. Main goroutine only.
func (d *demo) event(object, format string, args ...any) {
	d.stampedAt(d.eventAt, "    %-27s %s", object+":", fmt.Sprintf(format, args...))
}

// printCall prints a driver call, stamped with the time it ended.
func (d *demo) printCall(ev objEvent) {
	d.stampedAt(ev.at, "    driver: %s", formatCall(*ev.call))
}

// table prints a title and aligned key/value rows in one piece, so that no
// other output lands in the middle.
func (d *demo) table(title string, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s", title)
	for _, r := range rows {
		fmt.Fprintf(&b, "\n    %-*s  %s", width, r[0], r[1])
	}
	d.println("%s", b.String())
}

func formatList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func formatMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+": "+m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(10 * time.Millisecond)
}
