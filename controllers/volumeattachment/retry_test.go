package volumeattachment

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/csi-attacher/csi-attacher/controllers/internal/queue"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// How each outcome is retried. controller-runtime Forgets an object's
// backoff on RequeueAfter (and on success), and keeps it on Requeue and on
// an error: a refusal must never reset the backoff of an attachment that
// keeps failing. A returned error is logged as "Reconciler error" and
// backed off exponentially from --retry-interval-start.
func TestRetryPolicy(t *testing.T) {
	r := &Reconciler{RetryIntervalMax: 30 * time.Second}
	exhausted := status.Error(codes.ResourceExhausted, "node full")
	invalid := fmt.Errorf("PersistentVolume %q: %w", "pv-1", volume.ErrWrongCSIDriver)
	tests := []struct {
		name   string
		err    error
		result ctrl.Result
		// returned is the error Reconcile must return: nil, err itself, or
		// (terminal) err as a terminal error.
		returned bool
		terminal bool
	}{
		{name: "success", err: nil},

		// Transient gRPC codes: the call may still be in progress on the
		// backend, so the error is returned for the exponential backoff.
		// The driver's ResourceExhausted (a full node) is a failure like any
		// other.
		{name: "the driver's ResourceExhausted", err: exhausted, returned: true},
		{name: "a wrapped ResourceExhausted", err: fmt.Errorf("publishing: %w", exhausted), returned: true},
		{name: "Unavailable", err: status.Error(codes.Unavailable, "driver restarting"), returned: true},
		{name: "DeadlineExceeded", err: status.Error(codes.DeadlineExceeded, "timeout"), returned: true},
		{name: "Aborted", err: status.Error(codes.Aborted, "operation pending"), returned: true},
		{name: "Canceled", err: status.Error(codes.Canceled, "canceled"), returned: true},
		// An error of ours (a missing object, a failed write) has no gRPC
		// code: backed off like a transient one.
		{name: "a missing PersistentVolume", err: errors.New(`PersistentVolume "pv-1" not found`), returned: true},

		// Final gRPC codes will not fix themselves soon: retried at
		// --retry-interval-max, not returned (so logged by the policy, not
		// as "Reconciler error").
		{name: "InvalidArgument", err: status.Error(codes.InvalidArgument, "bad"), result: ctrl.Result{RequeueAfter: 30 * time.Second}},
		{name: "NotFound", err: status.Error(codes.NotFound, "no such volume"), result: ctrl.Result{RequeueAfter: 30 * time.Second}},
		{name: "FailedPrecondition", err: status.Error(codes.FailedPrecondition, "attached elsewhere"), result: ctrl.Result{RequeueAfter: 30 * time.Second}},
		{name: "a wrapped final error", err: fmt.Errorf("publishing: %w", status.Error(codes.Internal, "boom")), result: ctrl.Result{RequeueAfter: 30 * time.Second}},

		// A refusal for a busy node keeps the backoff: rate-limited requeue.
		//lint:ignore SA1019 Requeue is what the policy returns for a refusal
		{name: "busy node", err: fmt.Errorf("attach: %w", errNodeBusy), result: ctrl.Result{Requeue: true}},
		{name: "shutting down", err: errShuttingDown},

		// A cached PersistentVolume older than our own last write (its
		// finalizer patch) is no failure: looked at again shortly, quietly,
		// as a stale VolumeAttachment is (Reconcile).
		{name: "a stale PersistentVolume", err: fmt.Errorf("PersistentVolume %q: %w", "pv-1", freshness.ErrCacheBehind),
			result: ctrl.Result{RequeueAfter: queue.StaleRecheck}},

		// A terminal error (an attachment that can never work as its
		// objects are) is returned as such: not retried until they change.
		{name: "terminal", err: reconcile.TerminalError(invalid), returned: true, terminal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result, err := r.retryPolicy(context.Background(), tt.err)
			if result != tt.result {
				t.Errorf("result = %+v, want %+v", result, tt.result)
			}
			switch {
			case !tt.returned && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.returned && !errors.Is(err, tt.err):
				t.Errorf("err = %v, want %v returned", err, tt.err)
			case tt.returned && tt.terminal != errors.Is(err, reconcile.TerminalError(nil)):
				t.Errorf("err = %v, terminal: %v, want %v", err, !tt.terminal, tt.terminal)
			}
		})
	}
}

// Which attach failures are terminal: only those the objects themselves
// cause (volume.Invalid). A missing object may appear, and the driver's
// final errors are retried at the longest interval, so neither is.
func TestTerminal(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		terminal bool
	}{
		{name: "no error", err: nil},
		{name: "another driver's PersistentVolume", err: fmt.Errorf("PersistentVolume %q: %w", "pv-1", volume.ErrWrongCSIDriver), terminal: true},
		{name: "both sources", err: volume.ErrBothSources, terminal: true},
		{name: "access modes CSI cannot express", err: fmt.Errorf("PersistentVolume %q: %w", "pv-1", volume.ErrAccessModes), terminal: true},
		{name: "a missing PersistentVolume", err: errors.New(`PersistentVolume "pv-1" not found`)},
		{name: "a final gRPC error", err: status.Error(codes.InvalidArgument, "bad")},
		{name: "a stale PersistentVolume", err: fmt.Errorf("PersistentVolume %q: %w", "pv-1", freshness.ErrCacheBehind)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := terminal(tt.err)
			if !errors.Is(err, tt.err) {
				t.Fatalf("terminal(%v) = %v, want the error kept", tt.err, err)
			}
			if got := err != nil && errors.Is(err, reconcile.TerminalError(nil)); got != tt.terminal {
				t.Fatalf("terminal(%v) is terminal: %v, want %v", tt.err, got, tt.terminal)
			}
		})
	}
}

// Which errors are retried without being reported: a call not started
// (busy node, shutdown) and a cache behind our own write. Anything else is
// a failure, shown in the status and an Event.
func TestNotReported(t *testing.T) {
	tests := []struct {
		name                      string
		err                       error
		notStarted, cacheIsBehind bool
	}{
		{name: "busy node", err: fmt.Errorf("attach: %w", errNodeBusy), notStarted: true},
		{name: "shutting down", err: errShuttingDown, notStarted: true},
		{name: "a stale PersistentVolume", err: fmt.Errorf("PersistentVolume %q: %w", "pv-1", freshness.ErrCacheBehind), cacheIsBehind: true},
		{name: "a driver error", err: status.Error(codes.Internal, "boom")},
		{name: "a missing PersistentVolume", err: errors.New(`PersistentVolume "pv-1" not found`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callNotStarted(tt.err); got != tt.notStarted {
				t.Errorf("callNotStarted = %v, want %v", got, tt.notStarted)
			}
			if got := cacheBehind(tt.err); got != tt.cacheIsBehind {
				t.Errorf("cacheBehind = %v, want %v", got, tt.cacheIsBehind)
			}
		})
	}
}
