package metrics_test

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/metrics"
)

// How the attacher wires the metrics: one Metrics per process, registered
// once, recorded from the reconcilers, state gauges counted from a lister at
// scrape time.
func Example() {
	const finalizer = "external-attacher/csi-example-com"
	m := metrics.New("csi.example.com")
	reg := prometheus.NewRegistry() // controller-runtime's metrics.Registry in the binary
	if err := m.Register(reg); err != nil {
		panic(err)
	}

	// In the real StateCounter this list comes from the informer cache.
	vas := []storagev1.VolumeAttachment{
		{Status: storagev1.VolumeAttachmentStatus{Attached: true}},
		{Status: storagev1.VolumeAttachmentStatus{AttachError: &storagev1.VolumeError{Message: "boom"}}},
	}
	m.SetStateSource(func() (attached, attaching, detaching, failed int, err error) {
		attached, attaching, detaching, failed = metrics.Count(vas, finalizer)
		return attached, attaching, detaching, failed, nil
	})

	m.SetConnectionUp(true)
	m.SetDriverReady(true)
	m.ObserveAttach(2 * time.Second)
	m.OperationFailed(metrics.OperationAttach, fmt.Errorf("publish: %w", status.Error(codes.DeadlineExceeded, "timeout")))

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != metrics.VolumeAttachments {
			continue
		}
		for _, s := range mf.GetMetric() {
			fmt.Println(s.GetLabel()[1].GetValue(), s.GetGauge().GetValue())
		}
	}
	// Output:
	// attached 1
	// attaching 0
	// detaching 0
	// failed 1
}
