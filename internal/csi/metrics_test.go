package csi

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The label values for an error without a gRPC status are part of the
// metrics' contract: the reference's for csi_sidecar_operations_seconds,
// ours for csi_attacher_operation_errors_total. Literals, not the constants,
// so that a change to either shows up here.
func TestStatusLabel(t *testing.T) {
	g := NewWithT(t)
	g.Expect(NonGRPCStatusCode).To(Equal("unknown-non-grpc"))
	g.Expect(NoGRPCCode).To(Equal("none"))

	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "OK"},
		{status.Error(codes.DeadlineExceeded, "slow"), "DeadlineExceeded"},
		{fmt.Errorf("publish: %w", status.Error(codes.Internal, "boom")), "Internal"},
		{errors.New("no status"), "unknown-non-grpc"},
	} {
		g.Expect(statusLabel(tc.err)).To(Equal(tc.want), fmt.Sprint(tc.err))
	}
}
