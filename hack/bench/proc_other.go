//go:build unix && !linux

package main

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

var errNoProc = errors.New("process statistics need Linux /proc")

// memory is one sample of the process's memory, in KiB.
type memory struct{ peak, anon, file int64 }

// readMemory is only available on Linux; elsewhere the peak comes from the
// rusage of the exited process.
func readMemory(int) (memory, error) { return memory{}, errNoProc }

// cpuSeconds is only available on Linux; elsewhere the total comes from the
// exited process.
func cpuSeconds(int) (float64, error) { return 0, errNoProc }

func systemCPU() (busy, total uint64, err error) { return 0, 0, errNoProc }

func loadAvg() string { return "" }

func memTotalMiB() int64 { return 0 }

// exitedPeakRSSKiB returns the peak RSS of an exited process from its rusage
// (bytes on macOS, KiB on the BSDs).
func exitedPeakRSSKiB(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}
