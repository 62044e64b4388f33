package cache

import (
	"context"

	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StartWithCache creates the informers of objs' kinds before the Manager
// starts, so the cache starts them together with the others and the
// Manager's first wait for the caches covers them all. A controller that
// watches a kind no index or handler asked for creates its informer only
// when it starts itself, after that wait, and then waits again for that
// informer's whole list: on a large cluster, a second list in a row before
// any worker starts.
func StartWithCache(c InformerSource, objs ...client.Object) error {
	for _, obj := range objs {
		// Before the Manager starts, GetInformer only creates the
		// informer; it must not wait for a sync that cannot happen yet.
		if _, err := c.GetInformer(context.Background(), obj, crcache.BlockUntilSynced(false)); err != nil {
			return err
		}
	}
	return nil
}
