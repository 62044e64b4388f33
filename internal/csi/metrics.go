package csi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Metric and label names of the CSI call histogram. They are those of the
// reference attacher (csi-lib-utils), so existing dashboards keep working.
const (
	MetricOperationsSeconds = "csi_sidecar_operations_seconds"
	LabelDriverName         = "driver_name"
	LabelMethodName         = "method_name"
	LabelGRPCStatusCode     = "grpc_status_code"
	// LabelMigrated ("true"/"false") is present only for drivers that took
	// over an in-tree plugin, as in the reference attacher.
	LabelMigrated = "migrated"

	// UnknownDriverName labels calls made before GetPluginInfo answered.
	UnknownDriverName = "unknown-driver"
)

// Label values of an error that carries no gRPC status. There are two, one
// per metric, and they must stay different:
//
//   - csi_sidecar_operations_seconds is the reference's metric (csi-lib-utils),
//     which labels such a call "unknown-non-grpc"; dashboards written for
//     the reference match on that value.
//   - csi_attacher_operation_errors_total is the attacher's own metric. There
//     an error without a status is nearly always one of the attacher's own
//     checks (a missing PersistentVolume, Secret or CSINode entry) rather than
//     a failed call, and "none" says so; the README, the runbook, the
//     dashboard and the alert rules match on it.
//
// They are kept side by side here, as the metrics package depends on this one.
const (
	// NonGRPCStatusCode is the grpc_status_code of csi_sidecar_operations_seconds
	// for a call that failed without a gRPC status.
	NonGRPCStatusCode = "unknown-non-grpc"
	// NoGRPCCode is the grpc_code of csi_attacher_operation_errors_total for an
	// error that carries no gRPC status.
	NoGRPCCode = "none"
)

// OperationsBuckets are the reference attacher's buckets, in seconds.
var OperationsBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600}

// operations is the csi_sidecar_operations_seconds collector. The reference
// attacher adds a "migrated" label, but only for drivers that took over an
// in-tree plugin, and the driver's name is known only after GetPluginInfo.
// So the calls made before that (Probe, GetPluginInfo, capabilities) are
// recorded in both shapes, and the shape is chosen once, before the
// collector is registered; from then on only that shape is recorded, and
// Describe and Collect serve it.
type operations struct {
	plain, migrated *prometheus.HistogramVec
	withMigrated    atomic.Bool
	chosen          atomic.Bool
}

func newOperations() *operations {
	opts := prometheus.HistogramOpts{
		Name:    MetricOperationsSeconds,
		Help:    "Container Storage Interface operation duration with gRPC error code status total",
		Buckets: OperationsBuckets,
	}
	return &operations{
		plain:    prometheus.NewHistogramVec(opts, []string{LabelDriverName, LabelMethodName, LabelGRPCStatusCode}),
		migrated: prometheus.NewHistogramVec(opts, []string{LabelDriverName, LabelMethodName, LabelGRPCStatusCode, LabelMigrated}),
	}
}

func (o *operations) active() *prometheus.HistogramVec {
	if o.withMigrated.Load() {
		return o.migrated
	}
	return o.plain
}

// Describe implements prometheus.Collector.
func (o *operations) Describe(ch chan<- *prometheus.Desc) { o.active().Describe(ch) }

// Collect implements prometheus.Collector.
func (o *operations) Collect(ch chan<- prometheus.Metric) { o.active().Collect(ch) }

func (o *operations) observe(driver, method, code string, migrated bool, d time.Duration) {
	chosen, withMigrated := o.chosen.Load(), o.withMigrated.Load()
	if !chosen || !withMigrated {
		o.plain.WithLabelValues(driver, method, code).Observe(d.Seconds())
	}
	if !chosen || withMigrated {
		o.migrated.WithLabelValues(driver, method, code, strconv.FormatBool(migrated)).Observe(d.Seconds())
	}
}

// register chooses the label set and registers the collector. When the
// registry already holds an operations collector of the same shape (a second
// Client in the same process, e.g. after a reconnect) that one is returned
// instead of failing, so callers never have to care; the second client's
// start-up calls are then not counted.
func (o *operations) register(reg prometheus.Registerer, withMigrated bool) (*operations, error) {
	o.withMigrated.Store(withMigrated)
	o.chosen.Store(true)
	if reg == nil {
		return o, nil
	}
	if err := reg.Register(o); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*operations); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("registering metric %s: %w", MetricOperationsSeconds, err)
	}
	return o, nil
}

// migratedKey marks a call's context as one for a migrated in-tree volume.
type migratedKey struct{}

func withMigrated(ctx context.Context, migrated bool) context.Context {
	if !migrated {
		return ctx
	}
	return context.WithValue(ctx, migratedKey{}, true)
}

// metricsInterceptor observes every unary call, Probe and GetPluginInfo
// included. The driver name and the collector are read per call: the name
// is only known after GetPluginInfo, and the collector may be swapped for an
// already registered one at the end of Connect.
func metricsInterceptor(ops *atomic.Pointer[operations], driverName *atomic.Pointer[string]) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		began := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		name := UnknownDriverName
		if n := driverName.Load(); n != nil && *n != "" {
			name = *n
		}
		migrated, _ := ctx.Value(migratedKey{}).(bool)
		ops.Load().observe(name, method, statusLabel(err), migrated, time.Since(began))
		return err
	}
}

// statusLabel is the grpc_status_code of a call that returned err.
func statusLabel(err error) string {
	code, ok := Code(err)
	if !ok {
		return NonGRPCStatusCode
	}
	return code.String()
}
