package rights

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// DefaultInterval is how often Monitor reviews the rights again
// while one is missing, so that a Role applied later makes the attacher
// ready without a restart.
const DefaultInterval = 30 * time.Second

// Monitor is the attacher's own run of the "rights" check: it reviews
// RequiredRights at start, logs each missing right with the Role or
// ClusterRole that grants it (error level for a right the attacher cannot
// work without, info for an optional one), and fails its readiness check
// while a required right is missing. The verdicts are the doctor's (Verdicts), word for
// word.
//
// It matters most for the Lease: leader election runs before any
// controller, and a replica that may not get or update the Lease would
// otherwise wait for it forever, ready and silent. The monitor runs on
// every replica, leader or not.
type Monitor struct {
	// Review creates the SelfSubjectAccessReviews.
	Review Reviewer
	// Rights are the rights to review (RequiredRights).
	Rights []Right
	// LeaderElection is --leader-election, for the verdict's wording.
	LeaderElection bool
	// Interval is the pause between reviews while something is missing;
	// DefaultInterval when zero.
	Interval time.Duration
	// Log receives the verdicts.
	Log logr.Logger

	mu       sync.Mutex
	problem  error // nil once every required right is granted
	reviewed bool
	logged   map[string]bool // messages already logged
}

// errNotReviewed is the readiness reason until the first review.
var errNotReviewed = errors.New("the attacher's API rights have not been reviewed yet")

// who names the attacher in the verdicts it logs.
const who = "the attacher"

// ReviewOnce reviews the rights, logs what changed and updates the
// readiness check. It reports whether every required right is granted.
func (m *Monitor) ReviewOnce(ctx context.Context) bool {
	results := Verdicts(who, m.LeaderElection, ReviewRights(ctx, m.Review, m.Rights))
	var failures []string
	current := map[string]bool{}
	for _, r := range results {
		current[r.Message] = true
		if m.logged[r.Message] {
			continue
		}
		switch r.Status {
		case StatusFail:
			m.Log.Error(errors.New(r.Message), "Missing API right: the attacher stays unready until it is granted")
		case StatusWarn:
			m.Log.Info("Missing optional API right", "warning", r.Message)
		}
	}
	for _, r := range results {
		if r.Status == StatusFail {
			failures = append(failures, r.Message)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	hadProblem := m.reviewed && m.problem != nil
	m.reviewed = true
	m.problem = nil
	if len(failures) > 0 {
		m.problem = fmt.Errorf("missing API rights: %s", strings.Join(failures, "; "))
	}
	if hadProblem && m.problem == nil {
		m.Log.Info("Every API right the attacher needs is now granted")
	}
	m.logged = current
	return m.problem == nil
}

// Start reviews again every Interval until every required right is
// granted, then returns. It implements manager.Runnable.
func (m *Monitor) Start(ctx context.Context) error {
	interval := m.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	m.mu.Lock()
	done := m.reviewed && m.problem == nil
	m.mu.Unlock()
	for !done {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		done = m.ReviewOnce(ctx)
	}
	return nil
}

// NeedLeaderElection is false: the monitor must run on a replica that
// cannot get the Lease, which is the case it is for.
func (m *Monitor) NeedLeaderElection() bool { return false }

// Check is the readiness check: the missing required rights, if any.
func (m *Monitor) Check(*http.Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.reviewed {
		return errNotReviewed
	}
	return m.problem
}
