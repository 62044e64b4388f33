package report

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorMessages checks the messages written to status.attachError and
// detachError (at most 1024 bytes, the API server's limit) and Event notes:
// a long driver error keeps its gRPC code and its start, and the cut is
// marked.
func TestErrorMessages(t *testing.T) {
	longDesc := strings.Repeat("d", 1100)
	grpcErr := fmt.Errorf("ControllerPublishVolume of volume %q to node %q: %w", "vol-1", "node-1",
		status.Error(codes.Internal, longDesc))
	// A volume ID long enough to push the gRPC code past the cut.
	longID := fmt.Errorf("ControllerPublishVolume of volume %q to node %q: %w", strings.Repeat("v", 1100), "node-1",
		status.Error(codes.NotFound, "no such volume"))
	// Multi-byte runes across the cut must not be split.
	runes := fmt.Errorf("driver said: %w", status.Error(codes.Internal, strings.Repeat("é", 700)))
	plain := errors.New(strings.Repeat("p", 1100))

	tests := []struct {
		name      string
		err       error
		limit     int
		message   func(error) string
		wantStart string
		wantCode  string // must appear in the result
		truncated bool
	}{
		{name: "short status message unchanged", err: errors.New("PersistentVolume \"pv\" not found"),
			limit: maxErrorMessage, message: StatusMessage, wantStart: `PersistentVolume "pv" not found`},
		{name: "long gRPC error in status", err: grpcErr, limit: maxErrorMessage, message: StatusMessage,
			wantStart: `ControllerPublishVolume of volume "vol-1" to node "node-1": rpc error: code = Internal desc = ddd`,
			wantCode:  "code = Internal", truncated: true},
		{name: "code past the cut is put first in status", err: longID, limit: maxErrorMessage, message: StatusMessage,
			wantStart: "[NotFound] ControllerPublishVolume of volume \"vvv", wantCode: "[NotFound]", truncated: true},
		{name: "runes are not split", err: runes, limit: maxErrorMessage, message: StatusMessage,
			wantStart: "driver said: rpc error: code = Internal desc = éé", wantCode: "code = Internal", truncated: true},
		{name: "long error without gRPC code", err: plain, limit: maxErrorMessage, message: StatusMessage,
			wantStart: "ppp", truncated: true},
		{name: "long gRPC error in an Event note", err: grpcErr, limit: maxEventNote, message: EventNote,
			wantStart: `[Internal] ControllerPublishVolume of volume "vol-1"`, wantCode: "[Internal]", truncated: true},
		{name: "code past the cut in an Event note", err: longID, limit: maxEventNote, message: EventNote,
			wantStart: "[NotFound] ControllerPublishVolume", wantCode: "[NotFound]", truncated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.message(tc.err)
			if len(got) > tc.limit {
				t.Fatalf("message is %d bytes, more than %d", len(got), tc.limit)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("message is not valid UTF-8: %q", got)
			}
			if !strings.HasPrefix(got, tc.wantStart) {
				t.Fatalf("message does not start with %q: %q", tc.wantStart, got)
			}
			if tc.wantCode != "" && !strings.Contains(got, tc.wantCode) {
				t.Fatalf("message lost the gRPC code %q: %q", tc.wantCode, got)
			}
			full := tc.err.Error()
			marked := strings.Contains(got, fmt.Sprintf(truncatedMark, len(full)))
			if marked != tc.truncated {
				t.Fatalf("cut marked: %v, want %v: %q", marked, tc.truncated, got)
			}
			if !tc.truncated && got != full {
				t.Fatalf("a message within the limit must be unchanged: got %q, want %q", got, full)
			}
			if tc.truncated && len(got) < tc.limit-len(fmt.Sprintf(truncatedMark, len(full)))-utf8.UTFMax-len("[NotFound] ") {
				t.Fatalf("message cut shorter than needed: %d bytes", len(got))
			}
		})
	}
}
