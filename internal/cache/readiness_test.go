package cache

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// blockingCache syncs when release is closed, or never.
type blockingCache struct{ release chan struct{} }

func (b blockingCache) WaitForCacheSync(ctx context.Context) bool {
	select {
	case <-b.release:
		return true
	case <-ctx.Done():
		return false
	}
}

func TestReadiness(t *testing.T) {
	g := NewWithT(t)
	c := &Readiness{Cache: blockingCache{release: make(chan struct{})}}
	g.Expect(c.NeedLeaderElection()).To(BeFalse())
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background()) }()

	g.Consistently(func() error { return c.Check(nil) }).WithTimeout(100 * time.Millisecond).Should(MatchError(errCacheNotSynced))
	close(c.Cache.(blockingCache).release)
	g.Eventually(done).Should(Receive(BeNil()))
	g.Expect(c.Check(nil)).To(Succeed())
}

func TestReadinessStopsUnsynced(t *testing.T) {
	g := NewWithT(t)
	c := &Readiness{Cache: blockingCache{release: make(chan struct{})}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Expect(c.Start(ctx)).To(Succeed())
	g.Expect(c.Check(nil)).To(MatchError(errCacheNotSynced), "a cache that never synced is never ready")
}
