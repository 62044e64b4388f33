package csi

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code returns the gRPC code carried by err, also when err wraps a gRPC
// status. It returns (codes.OK, true) for a nil error and false for errors
// that carry no gRPC status at all.
func Code(err error) (codes.Code, bool) {
	if err == nil {
		return codes.OK, true
	}
	// status.FromError unwraps (errors.As) and, for a non-status error,
	// returns ok=false with code Unknown; only ok tells them apart.
	st, ok := status.FromError(err)
	if !ok {
		return codes.Unknown, false
	}
	return st.Code(), true
}

// IsFinalError reports whether a failed CSI call is known to have had no
// effect on the storage backend. A non-final error means the operation may
// still be in progress or may even have succeeded (e.g. a timeout after the
// driver attached the volume), so the caller must assume the worst: keep
// its finalizer and retry.
//
// Errors without a gRPC status, and the codes Canceled, DeadlineExceeded,
// Unavailable, ResourceExhausted and Aborted, are not final; every other
// code is. This matches the reference attacher's classification. A nil
// error is not final (there is nothing to finalize).
func IsFinalError(err error) bool {
	if err == nil {
		return false
	}
	code, ok := Code(err)
	if !ok {
		return false
	}
	switch code {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return false
	default:
		return true
	}
}
