package leader

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// memLock is an in-memory resourcelock.Interface whose writes can be made
// to fail.
type memLock struct {
	id      string
	rec     *resourcelock.LeaderElectionRecord
	failing bool
}

var errWrite = errors.New("forbidden")

func (m *memLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if m.rec == nil {
		return nil, nil, errors.New("not found")
	}
	r := *m.rec
	return &r, nil, nil
}
func (m *memLock) Create(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	return m.Update(context.Background(), r)
}
func (m *memLock) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	if m.failing {
		return errWrite
	}
	m.rec = &r
	return nil
}
func (m *memLock) RecordEvent(string) {}
func (m *memLock) Identity() string   { return m.id }
func (m *memLock) Describe() string   { return "default/lease" }

func TestCheck(t *testing.T) {
	const lease = 15 * time.Second
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ours := resourcelock.LeaderElectionRecord{HolderIdentity: "me"}
	theirs := resourcelock.LeaderElectionRecord{HolderIdentity: "other"}
	released := resourcelock.LeaderElectionRecord{HolderIdentity: ""}

	type step struct {
		at      time.Duration // since start
		do      func(*Lock, *memLock)
		healthy bool
	}
	write := func(rec resourcelock.LeaderElectionRecord) func(*Lock, *memLock) {
		return func(l *Lock, _ *memLock) { _ = l.Update(context.Background(), rec) }
	}
	failWrites := func(_ *Lock, m *memLock) { m.failing = true }
	get := func(l *Lock, _ *memLock) { _, _, _ = l.Get(context.Background()) }
	setOther := func(_ *Lock, m *memLock) { m.rec = &theirs }
	nothing := func(*Lock, *memLock) {}

	tests := []struct {
		name  string
		steps []step
	}{
		{name: "a standby is healthy however long", steps: []step{
			{at: 0, do: nothing, healthy: true},
			{at: time.Hour, do: nothing, healthy: true},
		}},
		{name: "a leader that renews is healthy", steps: []step{
			{at: 0, do: write(ours), healthy: true},
			{at: 30 * time.Second, do: write(ours), healthy: true},
			{at: 60 * time.Second, do: write(ours), healthy: true},
			{at: 60*time.Second + lease + DefaultGrace, do: nothing, healthy: true},
		}},
		{name: "a leader whose renewals fail turns unhealthy after lease duration plus grace", steps: []step{
			{at: 0, do: write(ours), healthy: true},
			{at: time.Second, do: failWrites, healthy: true},
			{at: 5 * time.Second, do: write(ours), healthy: true},
			{at: lease + DefaultGrace, do: write(ours), healthy: true},
			{at: lease + DefaultGrace + time.Second, do: nothing, healthy: false},
		}},
		{name: "a leader that released the Lease is a standby", steps: []step{
			{at: 0, do: write(ours), healthy: true},
			{at: time.Second, do: write(released), healthy: true},
			{at: time.Hour, do: nothing, healthy: true},
		}},
		{name: "a leader that sees another holder no longer leads", steps: []step{
			{at: 0, do: write(ours), healthy: true},
			{at: time.Second, do: setOther, healthy: true},
			{at: 2 * time.Second, do: get, healthy: true},
			{at: time.Hour, do: nothing, healthy: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			now := start
			mem := &memLock{id: "me"}
			l := newLock(mem)
			l.leaseDuration = lease
			l.now = func() time.Time { return now }
			for i, s := range tt.steps {
				now = start.Add(s.at)
				s.do(l, mem)
				err := l.Check(nil)
				if s.healthy {
					g.Expect(err).NotTo(HaveOccurred(), "step %d", i)
				} else {
					g.Expect(err).To(MatchError(ContainSubstring("failed to renew leadership on Lease default/lease: last renewed 36s ago, more than the lease duration 15s plus 20s")), "step %d", i)
				}
			}
		})
	}
}
