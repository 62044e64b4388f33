package csi

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metric and label names of the CSI call histogram. They are those of the
// reference attacher (csi-lib-utils), so existing dashboards keep working.
const (
	MetricOperationsSeconds = "csi_sidecar_operations_seconds"
	LabelDriverName         = "driver_name"
	LabelMethodName         = "method_name"
	LabelGRPCStatusCode     = "grpc_status_code"

	// UnknownDriverName labels calls made before GetPluginInfo answered.
	UnknownDriverName = "unknown-driver"
	// NonGRPCStatusCode labels calls that failed without a gRPC status.
	NonGRPCStatusCode = "unknown-non-grpc"
)

// OperationsBuckets are the reference attacher's buckets, in seconds.
var OperationsBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600}

// newOperationsHistogram builds the histogram and registers it. When the
// registry already holds an identical collector (a second Client in the same
// process, e.g. after a reconnect) that collector is reused instead of
// failing, so callers never have to care.
func newOperationsHistogram(reg prometheus.Registerer) (*prometheus.HistogramVec, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricOperationsSeconds,
		Help:    "Container Storage Interface operation duration with gRPC error code status total",
		Buckets: OperationsBuckets,
	}, []string{LabelDriverName, LabelMethodName, LabelGRPCStatusCode})
	if reg == nil {
		return h, nil
	}
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("registering metric %s: %w", MetricOperationsSeconds, err)
	}
	return h, nil
}

// metricsInterceptor observes every unary call, Probe and GetPluginInfo
// included. driverName is read per call because it is only known after
// GetPluginInfo.
func metricsInterceptor(h *prometheus.HistogramVec, driverName *atomic.Pointer[string]) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		began := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		name := UnknownDriverName
		if n := driverName.Load(); n != nil && *n != "" {
			name = *n
		}
		h.WithLabelValues(name, method, statusLabel(err)).Observe(time.Since(began).Seconds())
		return err
	}
}

func statusLabel(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return NonGRPCStatusCode
	}
	return st.Code().String()
}
