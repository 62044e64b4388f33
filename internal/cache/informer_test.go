package cache_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/csi-attacher/csi-attacher/internal/cache"
)

// The cache's informers of cluster-scoped kinds have no namespace index:
// every object would land under the one key "", a set as large as the
// kind that is rebuilt on every start and read by nothing. Namespaced
// kinds keep it, and every other index is passed through.
func TestNewInformerIndexes(t *testing.T) {
	newInformer := cache.Options(trimDriver, nil).NewInformer
	if newInformer == nil {
		t.Fatal("the cache options set no NewInformer")
	}
	other := func(any) ([]string, error) { return nil, nil }
	tests := []struct {
		name          string
		obj           runtime.Object
		wantNamespace bool
	}{
		{name: "VolumeAttachment", obj: &storagev1.VolumeAttachment{}},
		{name: "PersistentVolume", obj: &corev1.PersistentVolume{}},
		{name: "CSINode", obj: &storagev1.CSINode{}},
		{name: "Secret metadata", obj: cache.SecretMetadata(), wantNamespace: true},
		{name: "Secret", obj: &corev1.Secret{}, wantNamespace: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, "other": other}
			inf := newInformer(&toolscache.ListWatch{}, tc.obj, time.Minute, in)
			got := inf.GetIndexer().GetIndexers()
			g.Expect(got).To(HaveKey("other"))
			if tc.wantNamespace {
				g.Expect(got).To(HaveKey(toolscache.NamespaceIndex))
			} else {
				g.Expect(got).NotTo(HaveKey(toolscache.NamespaceIndex))
			}
			g.Expect(in).To(HaveKey(toolscache.NamespaceIndex), "the caller's indexers are not modified")
		})
	}
}
