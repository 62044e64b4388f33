package logging

import (
	"fmt"
	"io"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// The benchmarks below replay what one volume costs the logger at the
// default --v=5: the values controller-runtime and our reconcilers attach to
// every reconcile (whether or not it logs), the reconcile trace the core
// drops, and the six lines of an attach, a detach and a release.

const (
	benchDriver = "bench.csi.example.com"
	benchNode   = "bench-node"
)

// benchLogger is the process logger at --v=5 with the values
// controller-runtime puts on a controller's logger.
func benchLogger(b *testing.B, format string) logr.Logger {
	b.Helper()
	log, err := New(Config{Verbosity: 5, Format: format}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	return log.WithValues("controller", "volumeattachment", "controllerGroup", "storage.k8s.io", "controllerKind", "VolumeAttachment")
}

// reconcile runs one reconcile's logging the way controller-runtime and our
// reconcilers do: the request's values, the trace line, our values, then
// lines.
func reconcile(log logr.Logger, name string, id int, lines func(logr.Logger)) {
	l := log.WithValues("VolumeAttachment", klog.KRef("", name))
	l = l.WithValues("namespace", "", "name", name)
	l = l.WithValues("reconcileID", types.UID(fmt.Sprintf("0b7c3c6e-4c1e-4d6a-9f51-%012d", id)))
	l.V(5).Info("Reconciling")
	ours := l.WithValues("Node", klog.KRef("", benchNode), "driver", benchDriver)
	if lines != nil {
		lines(ours)
	}
	l.V(5).Info("Reconcile successful")
}

// volumeLife is the logging of one volume in `make bench`: an attach
// reconcile with three lines, a detach with two, a release with one, and
// the reconciles that our own writes trigger and that log nothing.
func volumeLife(log logr.Logger, i int) {
	name := fmt.Sprintf("bench-va-%d", i)
	handle := fmt.Sprintf("bench-vol-%d", i)
	reconcile(log, name, 6*i, func(l logr.Logger) {
		l.V(4).Info("Publishing volume", "volumeHandle", handle, "nodeID", "bench-node-id")
		l.V(4).Info("Added finalizer", "PersistentVolume", "bench-pv-1")
		l.V(2).Info("Attached volume", "republished", false)
	})
	reconcile(log, name, 6*i+1, nil)
	reconcile(log, name, 6*i+2, func(l logr.Logger) {
		l.V(4).Info("Unpublishing volume", "volumeHandle", handle, "nodeID", "bench-node-id")
		l.V(2).Info("Detached volume")
	})
	reconcile(log, name, 6*i+3, nil)
	reconcile(log, name, 6*i+4, nil)
	reconcile(log, name, 6*i+5, func(l logr.Logger) {
		l.V(2).Info("Released PersistentVolume", "migrationRolledBack", false)
	})
}

func BenchmarkVolumeLogs(b *testing.B) {
	for _, format := range []string{FormatText, FormatJSON} {
		b.Run(format, func(b *testing.B) {
			log := benchLogger(b, format)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				volumeLife(log, i)
				i++
			}
		})
	}
}

// BenchmarkQuietReconcile is a reconcile that writes no line.
func BenchmarkQuietReconcile(b *testing.B) {
	log := benchLogger(b, FormatText)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		reconcile(log, "bench-va-1", i, nil)
		i++
	}
}

// BenchmarkLine is one line with a reconcile's values.
func BenchmarkLine(b *testing.B) {
	for _, format := range []string{FormatText, FormatJSON} {
		b.Run(format, func(b *testing.B) {
			log := benchLogger(b, format).
				WithValues("VolumeAttachment", klog.KRef("", "bench-va-1")).
				WithValues("namespace", "", "name", "bench-va-1").
				WithValues("reconcileID", types.UID("0b7c3c6e-4c1e-4d6a-9f51-000000000001")).
				WithValues("Node", klog.KRef("", benchNode), "driver", benchDriver)
			b.ReportAllocs()
			for b.Loop() {
				log.V(4).Info("Publishing volume", "volumeHandle", "bench-vol-1", "nodeID", "bench-node-id")
			}
		})
	}
}
