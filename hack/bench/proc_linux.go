package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat and
// /proc/stat. It is 100 on every Linux architecture Go supports (the kernel
// ABI fixes it; sysconf(_SC_CLK_TCK) would need cgo to ask).
const clockTicks = 100

// memory is one sample of /proc/<pid>/status, in KiB.
type memory struct {
	// peak is VmHWM, the peak resident set size.
	peak int64
	// anon is RssAnon: heap, stacks and other private memory.
	anon int64
	// file is RssFile: mapped files, i.e. the binary's code and read-only
	// data (shared, clean and reclaimable page cache).
	file int64
}

// readMemory reads VmHWM, RssAnon and RssFile from /proc/<pid>/status.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	found := 0
	for line := range strings.Lines(string(data)) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmHWM":
			dst = &m.peak
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		fields := strings.Fields(rest) // "12345 kB"
		if len(fields) == 0 {
			continue
		}
		if *dst, err = strconv.ParseInt(fields[0], 10, 64); err != nil {
			return memory{}, fmt.Errorf("malformed %s in /proc/%d/status: %w", key, pid, err)
		}
		found++
	}
	if found != 3 {
		return memory{}, fmt.Errorf("no VmHWM, RssAnon or RssFile in /proc/%d/status", pid)
	}
	return m, nil
}

// cpuSeconds reads utime+stime of a process from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// utime and stime are fields 14 and 15, i.e. indexes 11 and 12 here.
	if len(fields) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return float64(utime+stime) / clockTicks, nil
}

// systemCPU returns the busy and total jiffies of all CPUs from /proc/stat.
func systemCPU() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("malformed /proc/stat")
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed /proc/stat")
		}
		// guest and guest_nice (fields 9 and 10) are already counted in
		// user and nice.
		if i >= 8 {
			break
		}
		total += v
		// idle (3) and iowait (4) are not busy.
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return ""
	}
	return strings.Join(fields[:3], " ")
}

// memTotalMiB returns MemTotal from /proc/meminfo.
func memTotalMiB() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kib, _ := strconv.ParseInt(fields[0], 10, 64)
				return kib / 1024
			}
		}
	}
	return 0
}

// exitedPeakRSSKiB returns the peak RSS of an exited process from its rusage
// (ru_maxrss is in KiB on Linux).
func exitedPeakRSSKiB(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return int64(ru.Maxrss)
}
