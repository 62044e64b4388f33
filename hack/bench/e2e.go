package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/testbed/cluster"
)

// This file is the cluster benchmark (-cluster): Pods of StatefulSets on
// kwok nodes, with kube-controller-manager creating and deleting the
// VolumeAttachments and the attacher running as its built binary: the
// e2e suite's cluster (internal/testbed/cluster). It measures what a user
// waits for: from the StatefulSets' creation to every volume attached, and
// from their scale to zero to every volume detached.

// podsPerStatefulSet splits the Pods into StatefulSets of this size.
const podsPerStatefulSet = 100

const benchNamespace = "bench"

// clusterReport is the cluster benchmark's result.
type clusterReport struct {
	Pods         int     `json:"pods"`
	Nodes        int     `json:"nodes"`
	StatefulSets int     `json:"statefulsets"`
	Up           phase   `json:"up"`
	Down         phase   `json:"down"`
	PeakRSSMiB   float64 `json:"attacher_peak_rss_mib"`
	Machine      machine `json:"machine"`
}

// phase is one direction of the rollout.
type phase struct {
	// Seconds from the StatefulSets' creation (or scale to zero) until
	// every volume is attached (or detached and unpublished).
	Seconds float64 `json:"seconds"`
	// Latency is VolumeAttachment created -> attached, as seen by a watch
	// (up only).
	Latency *latencyStats `json:"va_latency,omitempty"`
	// LastCreated and LastAttached are when, from the phase's start, the
	// last VolumeAttachment was created by kube-controller-manager and the
	// last one was attached (up only): the gap between them is the
	// attacher's share of the phase.
	LastCreated  float64 `json:"last_va_created_seconds,omitempty"`
	LastAttached float64 `json:"last_va_attached_seconds,omitempty"`
	// Writes are the attacher's API writes by verb and resource, from the
	// audit log, and per volume (the leader-election Lease's renewals,
	// which follow the clock rather than the volumes, left out).
	Writes          map[string]int `json:"attacher_writes"`
	WritesPerVolume float64        `json:"attacher_writes_per_volume"`
	// Duplicates counts CSI calls repeated for a (volume, node) pair.
	Duplicates int     `json:"duplicate_csi_calls"`
	CPUSeconds float64 `json:"attacher_cpu_seconds"`

	began time.Time
}

func runCluster(ctx context.Context, cfg config) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	assets, err := testbed.AssetsDir("bench-e2e")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	// The benchmark's own clients have nothing to say; without a logger
	// controller-runtime warns about the missing one, with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	log := os.Stderr
	c, err := cluster.Start(ctx, cluster.Options{
		Root: root, Assets: assets, KwokVersion: os.Getenv("KWOK_VERSION"), Nodes: cfg.nodes,
		PublishLatency: cfg.publishLatency, UnpublishLatency: cfg.unpublishLatency,
		AuditAttacher: true, Log: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		if cfg.keep {
			fmt.Fprintf(log, "logs kept in %s\n", c.Dir)
		} else {
			c.RemoveDir()
		}
	}()
	rep := clusterReport{Pods: cfg.n, Nodes: cfg.nodes, Machine: machineInfo()}
	if err := c.CreateNamespace(ctx, benchNamespace); err != nil {
		return err
	}
	var sets []string
	for left, i := cfg.n, 0; left > 0; i++ {
		size := min(left, podsPerStatefulSet)
		name := fmt.Sprintf("bench-%d", i)
		if err := c.CreateStatefulSetVolumes(ctx, benchNamespace, name, size); err != nil {
			return err
		}
		sets = append(sets, name)
		left -= size
	}
	rep.StatefulSets = len(sets)
	attacher := c.Attachers()[0]
	pid := attacher.Cmd.Process.Pid

	w := newVAWatch()
	go w.run(ctx, c)

	fmt.Fprintf(log, "creating %d StatefulSets of up to %d Pods\n", len(sets), podsPerStatefulSet)
	rep.Up, err = measure(ctx, c, pid, cfg.n, fake.MethodPublish, func() error {
		for i, name := range sets {
			size := int32(min(cfg.n-i*podsPerStatefulSet, podsPerStatefulSet))
			if err := c.Client.Create(ctx, cluster.StatefulSet(benchNamespace, name, size)); err != nil {
				return err
			}
		}
		return nil
	}, func(s *cluster.Snapshot) bool { return len(s.VAs) == cfg.n && s.Converged() == nil })
	if err != nil {
		return err
	}
	rep.Up.Latency, rep.Up.LastCreated, rep.Up.LastAttached = w.latency(rep.Up.began)

	fmt.Fprintf(log, "scaling every StatefulSet to zero\n")
	rep.Down, err = measure(ctx, c, pid, cfg.n, fake.MethodUnpublish, func() error {
		for _, name := range sets {
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`))
			obj := cluster.StatefulSet(benchNamespace, name, 0)
			if err := c.Client.Patch(ctx, obj, patch); err != nil {
				return err
			}
		}
		return nil
	}, func(s *cluster.Snapshot) bool { return len(s.VAs) == 0 && len(s.Published) == 0 })
	if err != nil {
		return err
	}
	mem, err := readMemory(pid)
	if err != nil {
		return err
	}
	rep.PeakRSSMiB = round1(float64(mem.peak) / 1024)
	rep.Machine.LoadAvgEnd = loadAvg()
	printClusterReport(rep)
	if cfg.jsonPath != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(cfg.jsonPath, data, 0o644)
	}
	return nil
}

// measure runs act and waits until done holds, reporting the phase's
// duration, the attacher's writes and CPU, and the duplicate calls of
// method.
func measure(ctx context.Context, c *cluster.Cluster, pid, volumes int, method string, act func() error, done func(*cluster.Snapshot) bool) (phase, error) {
	var p phase
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return p, err
	}
	audit0, err := countAudit(c.AuditLog(), 0)
	if err != nil {
		return p, err
	}
	calls0, err := c.Calls(method)
	if err != nil {
		return p, err
	}
	began := time.Now()
	p.began = began
	if err := act(); err != nil {
		return p, err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := c.Take(ctx)
		if err != nil {
			return p, err
		}
		if done(s) {
			break
		}
		if exited := c.Exited(); len(exited) > 0 {
			return p, fmt.Errorf("components exited: %v", exited)
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("waiting for the rollout: %w", ctx.Err())
		case <-tick.C:
		}
	}
	p.Seconds = seconds(time.Since(began))
	// The last writes (a status patch, an Event) land a moment after the
	// state converged.
	time.Sleep(2 * time.Second)
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return p, err
	}
	p.CPUSeconds = round3(cpu1 - cpu0)
	writes, err := countAudit(c.AuditLog(), audit0.lines)
	if err != nil {
		return p, err
	}
	p.Writes = writes.byKind
	perVolume := 0
	for kind, n := range writes.byKind {
		if kind != "update leases" {
			perVolume += n
		}
	}
	p.WritesPerVolume = round3(float64(perVolume) / float64(volumes))
	calls, err := c.Calls(method)
	if err != nil {
		return p, err
	}
	seen := map[[2]string]bool{}
	for _, call := range calls[len(calls0):] {
		if call.Code != "OK" {
			continue
		}
		k := [2]string{call.VolumeID, call.NodeID}
		if seen[k] {
			p.Duplicates++
		}
		seen[k] = true
	}
	return p, nil
}

// auditCount counts the audit log's lines, and those after skip by verb
// and resource.
type auditCount struct {
	lines  int
	byKind map[string]int
}

func countAudit(path string, skip int) (auditCount, error) {
	out := auditCount{byKind: map[string]int{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		out.lines++
		if out.lines <= skip {
			continue
		}
		var e struct {
			Verb      string `json:"verb"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		kind := e.Verb + " " + e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			kind += "/" + e.ObjectRef.Subresource
		}
		out.byKind[kind]++
	}
	return out, sc.Err()
}

// vaWatch records when each VolumeAttachment was first seen and when it
// was first seen attached.
type vaWatch struct {
	mu       sync.Mutex
	created  map[string]time.Time
	attached map[string]time.Time
}

func newVAWatch() *vaWatch {
	return &vaWatch{created: map[string]time.Time{}, attached: map[string]time.Time{}}
}

func (w *vaWatch) run(ctx context.Context, c *cluster.Cluster) {
	cl, err := client.NewWithWatch(c.Config, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		wi, err := cl.Watch(ctx, &storagev1.VolumeAttachmentList{})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			va, ok := ev.Object.(*storagev1.VolumeAttachment)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			w.mu.Lock()
			if _, seen := w.created[va.Name]; !seen {
				w.created[va.Name] = now
			}
			if _, seen := w.attached[va.Name]; !seen && va.Status.Attached {
				w.attached[va.Name] = now
			}
			w.mu.Unlock()
		}
	}
}

// latency returns the created -> attached latencies and when, from start,
// the last VolumeAttachment was created and attached.
func (w *vaWatch) latency(start time.Time) (*latencyStats, float64, float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ds []time.Duration
	var lastCreated, lastAttached time.Time
	for name, at := range w.attached {
		if created, ok := w.created[name]; ok {
			ds = append(ds, at.Sub(created))
			if created.After(lastCreated) {
				lastCreated = created
			}
		}
		if at.After(lastAttached) {
			lastAttached = at
		}
	}
	return computeLatency(ds), seconds(lastCreated.Sub(start)), seconds(lastAttached.Sub(start))
}

func printClusterReport(r clusterReport) {
	fmt.Printf("cluster benchmark: %d Pods in %d StatefulSets on %d kwok nodes (%d CPUs, %s)\n",
		r.Pods, r.StatefulSets, r.Nodes, r.Machine.CPUs, r.Machine.GoVersion)
	for _, p := range []struct {
		name string
		ph   phase
	}{{"up (StatefulSets created -> every volume attached)", r.Up}, {"down (scaled to zero -> every volume detached)", r.Down}} {
		fmt.Printf("  %s: %.1f s\n", p.name, p.ph.Seconds)
		if l := p.ph.Latency; l != nil {
			fmt.Printf("    VolumeAttachment created -> attached: p50 %.3f s, p99 %.3f s, max %.3f s (%d)\n", l.P50, l.P99, l.Max, l.Count)
			fmt.Printf("    last VolumeAttachment created by kube-controller-manager at %.1f s, last attached at %.1f s\n", p.ph.LastCreated, p.ph.LastAttached)
		}
		fmt.Printf("    attacher: %.2f writes per volume %s, %.2f CPU s, %d duplicate CSI calls\n",
			p.ph.WritesPerVolume, formatCounts(p.ph.Writes), p.ph.CPUSeconds, p.ph.Duplicates)
	}
	fmt.Printf("  attacher peak RSS: %.1f MiB\n", r.PeakRSSMiB)
	data, _ := json.Marshal(r)
	fmt.Printf("BENCH_CLUSTER_JSON %s\n", data)
}
