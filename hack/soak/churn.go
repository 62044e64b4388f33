package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// churnSample is one reading of the attacher's memory.
type churnSample struct {
	at      time.Duration // since the churn started
	cycles  int64
	rssKiB  int64 // VmRSS
	anonKiB int64 // RssAnon: the heap and stacks, what a leak grows
	maps    map[string]int
}

var trackedLine = regexp.MustCompile(`^` + metrics.TrackedObjects + `\{.*` + metrics.LabelMap + `="([a-z_]+)".*\} ([0-9.e+]+)$`)

// churn runs -churn create/attach/detach/delete cycles, each with a new
// PersistentVolume and VolumeAttachment, on -n slots in parallel, with a
// fast driver and no faults. Every -sample it reads the attacher's RSS and
// its per-object map sizes (csi_attacher_tracked_objects); at the end, once
// everything is gone, every map must be empty and the anonymous RSS must
// not have grown after the warm-up (the first fifth of the cycles) by more
// than -rss-slack.
func (s *soak) churn(ctx context.Context, att *testbed.Attacher) (bool, error) {
	csiNode := testbed.CSINode(nodeName, storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID})
	if _, err := s.cs.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return false, err
	}
	pid := att.Cmd.Process.Pid
	start := time.Now()
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range s.cfg.n {
		wg.Go(func() {
			for {
				c := next.Add(1) - 1
				if c >= int64(s.cfg.churn) || ctx.Err() != nil {
					return
				}
				if err := s.churnCycle(ctx, c); err != nil {
					failures.Add(1)
					logf("warning: cycle %d: %v", c, err)
				}
				s.cycles.Add(1)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var samples []churnSample
	sample := func() {
		smp := churnSample{at: time.Since(start), cycles: s.cycles.Load(), maps: s.trackedObjects()}
		smp.rssKiB, smp.anonKiB = readRSS(pid)
		samples = append(samples, smp)
		// The in-process fake driver records every call: drop them, they
		// are not the attacher's memory.
		s.driver.ResetCalls()
		logf("cycles %7d  RSS %6.1f MiB (anon %6.1f MiB)  maps %s", smp.cycles,
			float64(smp.rssKiB)/1024, float64(smp.anonKiB)/1024, formatMaps(smp.maps))
	}
	tick := time.NewTicker(s.cfg.sample)
	defer tick.Stop()
	sample()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
			sample()
		}
	}
	// Idle: give the last deletions time to reach the attacher's cache.
	var last churnSample
	for range 30 {
		time.Sleep(time.Second)
		last = churnSample{at: time.Since(start), cycles: s.cycles.Load(), maps: s.trackedObjects()}
		if total(last.maps) == 0 && len(last.maps) > 0 {
			break
		}
	}
	last.rssKiB, last.anonKiB = readRSS(pid)
	samples = append(samples, last)

	warm := samples[0]
	for _, smp := range samples {
		if smp.cycles >= int64(s.cfg.churn)/5 {
			warm = smp
			break
		}
	}
	growth := float64(last.anonKiB-warm.anonKiB) / 1024
	fmt.Println()
	fmt.Println("CHURN RESULTS")
	row := func(label, format string, args ...any) {
		fmt.Printf("  %-46s %s\n", label, fmt.Sprintf(format, args...))
	}
	row("cycles (create PV+VA, attach, detach, delete)", "%d in %s (%d failed)", s.cycles.Load(), last.at.Round(time.Second), failures.Load())
	row(fmt.Sprintf("RSS after warm-up (%d cycles)", warm.cycles), "%.1f MiB (anon %.1f MiB)", float64(warm.rssKiB)/1024, float64(warm.anonKiB)/1024)
	row("RSS at the end, idle", "%.1f MiB (anon %.1f MiB)", float64(last.rssKiB)/1024, float64(last.anonKiB)/1024)
	row("anonymous RSS growth after warm-up", "%+.1f MiB (allowed %.0f MiB)", growth, s.cfg.rssSlack)
	row("per-object maps at the end", "%s", formatMaps(last.maps))
	bad := len(last.maps) == 0 || total(last.maps) != 0 || growth > s.cfg.rssSlack || failures.Load() > 0
	if bad {
		fmt.Println("CHURN FAILED")
	} else {
		fmt.Println("CHURN PASSED")
	}
	return bad, nil
}

// churnCycle attaches and detaches one new volume and deletes both objects.
func (s *soak) churnCycle(ctx context.Context, c int64) error {
	pv := fmt.Sprintf("churn-pv-%d", c)
	va := fmt.Sprintf("churn-va-%d", c)
	if _, err := s.cs.CoreV1().PersistentVolumes().Create(ctx, testbed.PV(pv, driverName, fmt.Sprintf("churn-vol-%d", c)), metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := s.cs.StorageV1().VolumeAttachments().Create(ctx, testbed.VA(va, driverName, nodeName, pv), metav1.CreateOptions{}); err != nil {
		return err
	}
	if !s.waitFor(ctx, va, time.Minute, func(v *storagev1.VolumeAttachment) bool { return v != nil && v.Status.Attached }) {
		return fmt.Errorf("VolumeAttachment %s not attached within a minute", va)
	}
	if err := s.cs.StorageV1().VolumeAttachments().Delete(ctx, va, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if !s.waitFor(ctx, va, time.Minute, func(v *storagev1.VolumeAttachment) bool { return v == nil }) {
		return fmt.Errorf("VolumeAttachment %s not gone within a minute", va)
	}
	if err := s.cs.CoreV1().PersistentVolumes().Delete(ctx, pv, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	// The PV goes once the attacher has released it.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := s.cs.CoreV1().PersistentVolumes().Get(ctx, pv, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PersistentVolume %s not gone within a minute", pv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trackedObjects reads csi_attacher_tracked_objects from the attacher; nil
// if the metrics cannot be read.
func (s *soak) trackedObjects() map[string]int {
	resp, err := http.Get(s.metricsURL)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m := trackedLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = int(v)
		}
	}
	return out
}

// readRSS returns VmRSS and RssAnon of pid, in KiB (0 where unknown).
func readRSS(pid int) (rss, anon int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "RssAnon:":
			anon = v
		}
	}
	return rss, anon
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func formatMaps(m map[string]int) string {
	if m == nil {
		return "(metrics not readable)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
