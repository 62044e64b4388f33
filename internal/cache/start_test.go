package cache

import (
	"context"
	"fmt"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// recordingSource records the informers asked for and whether the caller
// would wait for their sync.
type recordingSource struct {
	kinds   []string
	blocked bool
}

func (r *recordingSource) GetInformer(_ context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	o := crcache.InformerGetOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.BlockUntilSynced == nil || *o.BlockUntilSynced {
		r.blocked = true
	}
	r.kinds = append(r.kinds, fmt.Sprintf("%T", obj))
	return nil, nil
}

// TestStartWithCache checks that every kind gets its informer created, and
// that none is waited for: before the Manager starts, a wait for a sync
// would never end.
func TestStartWithCache(t *testing.T) {
	src := &recordingSource{}
	if err := StartWithCache(src, &storagev1.CSINode{}, SecretMetadata()); err != nil {
		t.Fatal(err)
	}
	want := []string{"*v1.CSINode", "*v1.PartialObjectMetadata"}
	if fmt.Sprint(src.kinds) != fmt.Sprint(want) {
		t.Errorf("informers created for %v, want %v", src.kinds, want)
	}
	if src.blocked {
		t.Error("StartWithCache waits for an informer's sync")
	}
}
