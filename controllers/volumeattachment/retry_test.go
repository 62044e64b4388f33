package volumeattachment

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	ctrl "sigs.k8s.io/controller-runtime"
)

// How each outcome is retried. controller-runtime Forgets an object's
// backoff on RequeueAfter (and on success), and keeps it on Requeue and on
// an error: a refusal must never reset the backoff of an attachment that
// keeps failing.
func TestRetryPolicy(t *testing.T) {
	r := &Reconciler{RetryIntervalMax: 30 * time.Second}
	exhausted := status.Error(codes.ResourceExhausted, "node full")
	tests := []struct {
		name    string
		err     error
		result  ctrl.Result
		keepErr bool
	}{
		{name: "success", err: nil},
		// The driver's ResourceExhausted (a full node) is a failure like
		// any other: returned, for the per-object exponential backoff.
		{name: "the driver's ResourceExhausted", err: exhausted, keepErr: true},
		{name: "a wrapped ResourceExhausted", err: fmt.Errorf("publishing: %w", exhausted), keepErr: true},
		// A refusal for a busy node keeps the backoff: rate-limited requeue.
		//lint:ignore SA1019 Requeue is what the policy returns for a refusal
		{name: "busy node", err: fmt.Errorf("attach: %w", errNodeBusy), result: ctrl.Result{Requeue: true}},
		{name: "shutting down", err: errShuttingDown},
		{name: "final error", err: status.Error(codes.InvalidArgument, "bad"), result: ctrl.Result{RequeueAfter: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result, err := r.retryPolicy(context.Background(), tt.err)
			if result != tt.result {
				t.Fatalf("result = %+v, want %+v", result, tt.result)
			}
			if tt.keepErr != (err != nil) {
				t.Fatalf("err = %v, want the error returned: %v", err, tt.keepErr)
			}
		})
	}
}
