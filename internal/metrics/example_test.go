package metrics_test

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

// How the attacher wires the metrics: one Metrics per process, registered
// once, recorded from the reconcilers, the VolumeAttachment gauges (counts
// by state, age of the oldest pending attach and detach) computed at scrape
// time.
func Example() {
	const finalizer = "external-attacher/csi-example-com"
	m := metrics.New("csi.example.com")
	reg := prometheus.NewRegistry() // controller-runtime's metrics.Registry in the binary
	if err := m.Register(reg); err != nil {
		panic(err)
	}

	// The binary uses metrics.CacheSnapshot, which lists these from the
	// informer cache on every scrape.
	now := time.Now()
	vas := []storagev1.VolumeAttachment{
		{Status: storagev1.VolumeAttachmentStatus{Attached: true}},
		{
			ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now.Add(-20 * time.Minute))},
			Status:     storagev1.VolumeAttachmentStatus{AttachError: &storagev1.VolumeError{Message: "boom"}},
		},
	}
	m.SetSnapshotSource(func() (metrics.Snapshot, error) {
		return metrics.Tally(vas, finalizer, now), nil
	})
	m.SetMaxInflight(2000)
	m.SetBuildInfo("v1.2.3", "0123abc", "2026-01-02T03:04:05Z")

	m.SetConnectionUp(true)
	m.SetDriverReady(true)
	m.ObserveAttach(2 * time.Second)
	m.OperationFailed(metrics.OperationAttach, fmt.Errorf("publish: %w", status.Error(codes.DeadlineExceeded, "timeout")))

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != metrics.VolumeAttachments && mf.GetName() != metrics.OldestPendingSeconds {
			continue
		}
		for _, s := range mf.GetMetric() {
			// Label 0 is driver_name, label 1 the state or operation.
			fmt.Println(mf.GetName(), s.GetLabel()[1].GetValue(), s.GetGauge().GetValue())
		}
	}
	// Output:
	// csi_attacher_oldest_pending_seconds attach 1200
	// csi_attacher_oldest_pending_seconds detach 0
	// csi_attacher_volumeattachments attached 1
	// csi_attacher_volumeattachments attaching 0
	// csi_attacher_volumeattachments detaching 0
	// csi_attacher_volumeattachments failed 1
}
