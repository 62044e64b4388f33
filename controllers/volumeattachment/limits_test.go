package volumeattachment

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCallLimiter(t *testing.T) {
	exhausted := status.Error(codes.ResourceExhausted, "rate limit exceeded")
	type step struct {
		acquire bool   // take a slot (else release the oldest one taken)
		node    string // node of the call released
		err     error  // result of the call released
		ok      bool   // for acquire: whether the slot was granted
		limit   int    // the bound after the step
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{{
		name: "bounded at max",
		max:  2,
		steps: []step{
			{acquire: true, ok: true, limit: 2},
			{acquire: true, ok: true, limit: 2},
			{acquire: true, ok: false, limit: 2},
			{node: "a", limit: 2},
			{acquire: true, ok: true, limit: 2},
		},
	}, {
		name: "one node at its attach limit does not lower the bound",
		max:  4,
		steps: []step{
			{acquire: true, ok: true, limit: 4},
			{acquire: true, ok: true, limit: 4},
			{node: "full", err: exhausted, limit: 4},
			{node: "full", err: exhausted, limit: 4},
		},
	}, {
		name: "throttling on several nodes halves the bound once per round",
		max:  8,
		steps: []step{
			{acquire: true, ok: true, limit: 8},
			{acquire: true, ok: true, limit: 8},
			{acquire: true, ok: true, limit: 8},
			{node: "a", err: exhausted, limit: 8},
			{node: "b", err: exhausted, limit: 4},
			// Started before the decrease: no second halving.
			{node: "c", err: exhausted, limit: 4},
			{acquire: true, ok: true, limit: 4},
			{acquire: true, ok: true, limit: 4},
			{acquire: true, ok: true, limit: 4},
			{acquire: true, ok: true, limit: 4},
			{acquire: true, ok: false, limit: 4},
			{node: "a", err: exhausted, limit: 4},
			{node: "b", err: exhausted, limit: 2},
			// Successes raise it by one each, up to max.
			{node: "a", limit: 3},
			{node: "a", limit: 4},
		},
	}, {
		name: "other errors change nothing",
		max:  2,
		steps: []step{
			{acquire: true, ok: true, limit: 2},
			{acquire: true, ok: true, limit: 2},
			{node: "a", err: status.Error(codes.Internal, "boom"), limit: 2},
			{node: "b", err: errors.New("not a gRPC error"), limit: 2},
		},
	}, {
		name:  "no limit",
		max:   0,
		steps: []step{{acquire: true, ok: true}, {acquire: true, ok: true}, {node: "a", err: exhausted}, {node: "b", err: exhausted}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newCallLimiter(tt.max, nil)
			var rounds []int
			for i, s := range tt.steps {
				if s.acquire {
					round, ok := l.tryAcquire()
					if ok != s.ok {
						t.Fatalf("step %d: acquire = %v, want %v", i, ok, s.ok)
					}
					if ok {
						rounds = append(rounds, round)
					}
				} else {
					l.release(rounds[0], s.node, s.err)
					rounds = rounds[1:]
				}
				if l.limit != s.limit {
					t.Fatalf("step %d: limit = %d, want %d", i, l.limit, s.limit)
				}
			}
		})
	}
}

func TestCallLimiterReportsChanges(t *testing.T) {
	exhausted := status.Error(codes.ResourceExhausted, "throttled")
	var got []int
	l := newCallLimiter(2, func(limit int, lowered bool) {
		if lowered {
			limit = -limit
		}
		got = append(got, limit)
	})
	r1, _ := l.tryAcquire()
	r2, _ := l.tryAcquire()
	l.release(r1, "a", exhausted)
	l.release(r2, "b", exhausted)
	r3, _ := l.tryAcquire()
	l.release(r3, "a", nil)
	if len(got) != 2 || got[0] != -1 || got[1] != 2 {
		t.Fatalf("changes = %v, want [-1 2] (lowered to 1, back at 2)", got)
	}
}
