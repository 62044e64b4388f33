package cache

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
)

// CacheSyncer is the part of the Manager's cache that readiness needs.
type CacheSyncer interface {
	WaitForCacheSync(ctx context.Context) bool
}

// errCacheNotSynced is the readiness answer until the informers have synced.
var errCacheNotSynced = errors.New("the informer caches have not synced yet: VolumeAttachments, PersistentVolumes and CSINodes are still being listed")

// Readiness is a Manager runnable and a /readyz check: it fails until
// the cache has listed every object the reconcilers read. Until then no
// attachment is served, however healthy the driver is, and with thousands
// of objects the first list takes a noticeable time. It runs on every
// replica, leader or not, as the caches do.
type Readiness struct {
	Cache  CacheSyncer
	synced atomic.Bool
}

// Start waits for the cache to sync; it returns at once if ctx ends first.
func (c *Readiness) Start(ctx context.Context) error {
	if c.Cache.WaitForCacheSync(ctx) {
		c.synced.Store(true)
	}
	return nil
}

// NeedLeaderElection is false: a standby replica's caches sync too.
func (c *Readiness) NeedLeaderElection() bool { return false }

// Check is a healthz.Checker.
func (c *Readiness) Check(*http.Request) error {
	if !c.synced.Load() {
		return errCacheNotSynced
	}
	return nil
}
