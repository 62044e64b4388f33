package maxprocs

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"strconv"
	"strings"
)

// Files read, relative to the cgroup file system mount. Inside a container
// the cgroup namespace makes them the container's own.
const (
	CgroupV2CPUMax    = "/sys/fs/cgroup/cpu.max"
	CgroupV1Quota     = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
	CgroupV1Period    = "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
	EnvGOMAXPROCS     = "GOMAXPROCS"
	minProcsFromQuota = 2
)

// CPULimit returns the CPU limit of the cgroup in CPUs (e.g. 1.5), and ok
// false when there is none ("max", -1, or no cgroup files).
func CPULimit(readFile func(string) ([]byte, error)) (limit float64, ok bool, err error) {
	if b, err := readFile(CgroupV2CPUMax); err == nil {
		return ParseCPUMax(string(b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("read %s: %w", CgroupV2CPUMax, err)
	}
	q, err := readFile(CgroupV1Quota)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", CgroupV1Quota, err)
	}
	p, err := readFile(CgroupV1Period)
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", CgroupV1Period, err)
	}
	return ParseCFS(string(q), string(p))
}

// ParseCPUMax parses cgroup v2 cpu.max: "<quota> <period>" or "max <period>".
func ParseCPUMax(s string) (float64, bool, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, false, fmt.Errorf("cpu.max %q: want \"<quota> <period>\"", strings.TrimSpace(s))
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	return ratio(f[0], f[1])
}

// ParseCFS parses cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us; a
// quota of -1 means no limit.
func ParseCFS(quota, period string) (float64, bool, error) {
	if strings.TrimSpace(quota) == "-1" {
		return 0, false, nil
	}
	return ratio(strings.TrimSpace(quota), strings.TrimSpace(period))
}

func ratio(quota, period string) (float64, bool, error) {
	q, err := strconv.ParseInt(quota, 10, 64)
	if err != nil || q <= 0 {
		return 0, false, fmt.Errorf("CPU quota %q: want a positive number of microseconds", quota)
	}
	p, err := strconv.ParseInt(period, 10, 64)
	if err != nil || p <= 0 {
		return 0, false, fmt.Errorf("CPU period %q: want a positive number of microseconds", period)
	}
	return float64(q) / float64(p), true, nil
}

// ForLimit returns GOMAXPROCS for a CPU limit on a machine with numCPU
// CPUs, by the Go runtime's own rule so that the two never disagree: the
// limit rounded up, at least 2 (a fractional limit still gets a spare
// thread for the garbage collector), at most numCPU.
func ForLimit(limit float64, numCPU int) int {
	n := int(math.Ceil(limit))
	n = max(n, minProcsFromQuota)
	return min(n, numCPU)
}

// Result says what Apply found and did.
type Result struct {
	// Procs is GOMAXPROCS after Apply.
	Procs int
	// Limit is the cgroup CPU limit; HasLimit is false when there is none.
	Limit    float64
	HasLimit bool
	// FromEnv is set when GOMAXPROCS came from the environment, which wins.
	FromEnv bool
	// Changed is set when Apply had to set GOMAXPROCS itself (the
	// runtime's own adjustment was off).
	Changed bool
}

// String is the line logged at start.
func (r Result) String() string {
	switch {
	case r.FromEnv:
		return fmt.Sprintf("GOMAXPROCS=%d from the %s environment variable, which takes precedence over the CPU limit", r.Procs, EnvGOMAXPROCS)
	case !r.HasLimit:
		return fmt.Sprintf("GOMAXPROCS=%d: no cgroup CPU limit, so all CPUs", r.Procs)
	case r.Changed:
		return fmt.Sprintf("GOMAXPROCS=%d from the cgroup CPU limit of %g CPUs (set by --automaxprocs)", r.Procs, r.Limit)
	default:
		return fmt.Sprintf("GOMAXPROCS=%d from the cgroup CPU limit of %g CPUs (already applied by the Go runtime)", r.Procs, r.Limit)
	}
}

// Apply sets GOMAXPROCS from the cgroup CPU limit unless the environment
// sets it. getenv and readFile stand for os.Getenv and os.ReadFile.
func Apply(getenv func(string) string, readFile func(string) ([]byte, error)) (Result, error) {
	current := runtime.GOMAXPROCS(0)
	if getenv(EnvGOMAXPROCS) != "" {
		return Result{Procs: current, FromEnv: true}, nil
	}
	limit, ok, err := CPULimit(readFile)
	if err != nil {
		return Result{Procs: current}, err
	}
	r := Result{Procs: current, Limit: limit, HasLimit: ok}
	if !ok {
		return r, nil
	}
	if want := ForLimit(limit, runtime.NumCPU()); want != current {
		// Only reached when the runtime's own adjustment is off: calling
		// runtime.GOMAXPROCS stops it following later changes.
		runtime.GOMAXPROCS(want)
		r.Procs, r.Changed = want, true
	}
	return r, nil
}
