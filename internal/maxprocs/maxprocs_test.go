package maxprocs

import (
	"fmt"
	"io/fs"
	"runtime"
	"testing"

	. "github.com/onsi/gomega"
)

// files is a fake file system for CPULimit.
func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		s, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
		}
		return []byte(s), nil
	}
}

func TestCPULimit(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		limit   float64
		ok      bool
		wantErr string
	}{
		{name: "v2 quota", files: map[string]string{CgroupV2CPUMax: "150000 100000\n"}, limit: 1.5, ok: true},
		{name: "v2 unlimited", files: map[string]string{CgroupV2CPUMax: "max 100000\n"}},
		{name: "v2 wins over v1", files: map[string]string{CgroupV2CPUMax: "400000 100000", CgroupV1Quota: "100000", CgroupV1Period: "100000"}, limit: 4, ok: true},
		{name: "v1 quota", files: map[string]string{CgroupV1Quota: "50000\n", CgroupV1Period: "100000\n"}, limit: 0.5, ok: true},
		{name: "v1 unlimited", files: map[string]string{CgroupV1Quota: "-1\n", CgroupV1Period: "100000\n"}},
		{name: "no cgroup", files: map[string]string{}},
		{name: "v2 garbage", files: map[string]string{CgroupV2CPUMax: "lots"}, wantErr: `cpu.max "lots"`},
		{name: "v2 zero quota", files: map[string]string{CgroupV2CPUMax: "0 100000"}, wantErr: `CPU quota "0"`},
		{name: "v1 bad period", files: map[string]string{CgroupV1Quota: "50000", CgroupV1Period: "x"}, wantErr: `CPU period "x"`},
		{name: "v1 period missing", files: map[string]string{CgroupV1Quota: "50000"}, wantErr: CgroupV1Period},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			limit, ok, err := CPULimit(files(tt.files))
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ok).To(Equal(tt.ok))
			g.Expect(limit).To(Equal(tt.limit))
		})
	}
}

func TestForLimit(t *testing.T) {
	tests := []struct {
		limit  float64
		numCPU int
		want   int
	}{
		{limit: 0.5, numCPU: 16, want: 2}, // at least 2, as the runtime
		{limit: 1, numCPU: 16, want: 2},
		{limit: 2.1, numCPU: 16, want: 3}, // rounded up
		{limit: 4, numCPU: 16, want: 4},
		{limit: 32, numCPU: 16, want: 16}, // never above the CPUs
		{limit: 0.5, numCPU: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%g of %d", tt.limit, tt.numCPU), func(t *testing.T) {
			NewWithT(t).Expect(ForLimit(tt.limit, tt.numCPU)).To(Equal(tt.want))
		})
	}
}

// TestApply runs Apply with the runtime's own adjustment overridden (as
// GODEBUG=containermaxprocs=0 would leave it), so that Apply must set
// GOMAXPROCS itself.
func TestApply(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs at least 2 CPUs to see a change")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	noEnv := func(string) string { return "" }
	limit2 := files(map[string]string{CgroupV2CPUMax: "200000 100000"})

	t.Run("sets GOMAXPROCS from the limit", func(t *testing.T) {
		g := NewWithT(t)
		runtime.GOMAXPROCS(1)
		r, err := Apply(noEnv, limit2)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r).To(Equal(Result{Procs: 2, Limit: 2, HasLimit: true, Changed: true}))
		g.Expect(runtime.GOMAXPROCS(0)).To(Equal(2))
		g.Expect(r.String()).To(Equal("GOMAXPROCS=2 from the cgroup CPU limit of 2 CPUs (set by --automaxprocs)"))
	})
	t.Run("already right", func(t *testing.T) {
		g := NewWithT(t)
		runtime.GOMAXPROCS(2)
		r, err := Apply(noEnv, limit2)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.Changed).To(BeFalse())
		g.Expect(r.String()).To(ContainSubstring("already applied by the Go runtime"))
	})
	t.Run("the environment wins", func(t *testing.T) {
		g := NewWithT(t)
		runtime.GOMAXPROCS(1)
		r, err := Apply(func(k string) string { return map[string]string{EnvGOMAXPROCS: "1"}[k] }, limit2)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r).To(Equal(Result{Procs: 1, FromEnv: true}))
		g.Expect(runtime.GOMAXPROCS(0)).To(Equal(1))
	})
	t.Run("no limit", func(t *testing.T) {
		g := NewWithT(t)
		runtime.GOMAXPROCS(1)
		r, err := Apply(noEnv, files(nil))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.HasLimit).To(BeFalse())
		g.Expect(runtime.GOMAXPROCS(0)).To(Equal(1))
	})
	t.Run("unreadable limit", func(t *testing.T) {
		g := NewWithT(t)
		_, err := Apply(noEnv, files(map[string]string{CgroupV2CPUMax: "garbage"}))
		g.Expect(err).To(HaveOccurred())
	})
}
