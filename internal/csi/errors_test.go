package csi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestIsFinalErrorAndCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		final    bool
		code     codes.Code
		grpcCode bool
	}{
		{"nil", nil, false, codes.OK, true},
		{"plain", errors.New("boom"), false, codes.Unknown, false},
		{"context", context.DeadlineExceeded, false, codes.Unknown, false},
		{"Canceled", status.Error(codes.Canceled, "x"), false, codes.Canceled, true},
		{"DeadlineExceeded", status.Error(codes.DeadlineExceeded, "x"), false, codes.DeadlineExceeded, true},
		{"Unavailable", status.Error(codes.Unavailable, "x"), false, codes.Unavailable, true},
		{"ResourceExhausted", status.Error(codes.ResourceExhausted, "x"), false, codes.ResourceExhausted, true},
		{"Aborted", status.Error(codes.Aborted, "x"), false, codes.Aborted, true},
		{"wrapped Aborted", fmt.Errorf("ctx: %w", status.Error(codes.Aborted, "x")), false, codes.Aborted, true},
		{"Unknown", status.Error(codes.Unknown, "x"), true, codes.Unknown, true},
		{"InvalidArgument", status.Error(codes.InvalidArgument, "x"), true, codes.InvalidArgument, true},
		{"NotFound", status.Error(codes.NotFound, "x"), true, codes.NotFound, true},
		{"AlreadyExists", status.Error(codes.AlreadyExists, "x"), true, codes.AlreadyExists, true},
		{"PermissionDenied", status.Error(codes.PermissionDenied, "x"), true, codes.PermissionDenied, true},
		{"FailedPrecondition", status.Error(codes.FailedPrecondition, "x"), true, codes.FailedPrecondition, true},
		{"OutOfRange", status.Error(codes.OutOfRange, "x"), true, codes.OutOfRange, true},
		{"Unimplemented", status.Error(codes.Unimplemented, "x"), true, codes.Unimplemented, true},
		{"Internal", status.Error(codes.Internal, "x"), true, codes.Internal, true},
		{"DataLoss", status.Error(codes.DataLoss, "x"), true, codes.DataLoss, true},
		{"Unauthenticated", status.Error(codes.Unauthenticated, "x"), true, codes.Unauthenticated, true},
		{"twice wrapped Internal", fmt.Errorf("a: %w", fmt.Errorf("b: %w", status.Error(codes.Internal, "x"))), true, codes.Internal, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(IsFinalError(tc.err)).To(Equal(tc.final))
			code, ok := Code(tc.err)
			g.Expect(ok).To(Equal(tc.grpcCode))
			g.Expect(code).To(Equal(tc.code))
		})
	}
}
