package drift

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/csi-attacher/csi-attacher/internal/attachment"
	"github.com/csi-attacher/csi-attacher/internal/forcesync"
	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

const driver = "csi.example.com"

// lister answers ListVolumes from a fixed map, or with err.
type lister struct {
	published map[string][]string
	err       error
}

func (l lister) ListVolumes(context.Context, int32) (map[string][]string, error) {
	return l.published, l.err
}

// va describes the one VolumeAttachment of a case.
type va struct {
	driver    string
	attached  bool
	ours      bool // our finalizer
	deleting  bool // deleted, with another finalizer keeping it
	annotated string
}

func (v va) build() *storagev1.VolumeAttachment {
	o := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va-1", UID: types.UID("uid-va-1")},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: v.driver, NodeName: "node-1",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-1")}},
		Status: storagev1.VolumeAttachmentStatus{Attached: v.attached},
	}
	if o.Spec.Attacher == "" {
		o.Spec.Attacher = driver
	}
	if v.ours {
		o.Finalizers = append(o.Finalizers, volume.FinalizerName(driver))
	}
	if v.deleting {
		o.Finalizers = append(o.Finalizers, "example.com/other")
		o.DeletionTimestamp = ptr.To(metav1.Now())
	}
	if v.annotated != "" {
		o.Annotations = map[string]string{volume.NodeIDAnnotation: v.annotated}
	}
	return o
}

// What one pass asks of the controller for one VolumeAttachment: a forced
// publish for an attached volume the driver no longer has published there,
// a forced unpublish for a detached one it still has; nothing for anything
// else, which the controller owns already.
func TestPass(t *testing.T) {
	tests := []struct {
		name      string
		va        va
		published map[string][]string
		listErr   error
		stalePV   bool
		want      forcesync.Kind // 0: no mark
		reason    string
	}{
		{name: "attached and published", va: va{attached: true, ours: true},
			published: map[string][]string{"h-1": {"id-1"}}},
		{name: "attached, published to another node only", va: va{attached: true, ours: true},
			published: map[string][]string{"h-1": {"id-2"}}, want: forcesync.Publish, reason: ReasonDetachedOutOfBand},
		{name: "attached, not listed at all", va: va{attached: true, ours: true},
			published: map[string][]string{}, want: forcesync.Publish, reason: ReasonDetachedOutOfBand},
		{name: "attached, published to the annotated node ID", va: va{attached: true, ours: true, annotated: "id-old"},
			published: map[string][]string{"h-1": {"id-old"}}},
		{name: "attached, published to the CSINode's ID but not the annotated one", va: va{attached: true, ours: true, annotated: "id-old"},
			published: map[string][]string{"h-1": {"id-1"}}, want: forcesync.Publish, reason: ReasonDetachedOutOfBand},
		{name: "being attached", va: va{ours: true}, published: map[string][]string{}},
		{name: "detached, still published", va: va{deleting: true},
			published: map[string][]string{"h-1": {"id-1"}}, want: forcesync.Unpublish, reason: ReasonStillPublished},
		{name: "detached and unpublished", va: va{deleting: true}, published: map[string][]string{"h-1": {"id-2"}}},
		{name: "being detached", va: va{deleting: true, ours: true}, published: map[string][]string{"h-1": {"id-1"}}},
		{name: "another driver's", va: va{driver: "other.example.com", attached: true, ours: true}, published: map[string][]string{}},
		{name: "a PersistentVolume older than our own write", va: va{attached: true, ours: true},
			published: map[string][]string{}, stalePV: true},
		{name: "ListVolumes failed", va: va{attached: true, ours: true}, listErr: errors.New("unavailable")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			pv := &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: "pv-1", UID: "uid-pv-1"},
				Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
					CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "h-1"}}},
			}
			node := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
				Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: driver, NodeID: "id-1"}}}}
			obj := tt.va.build()
			c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(pv, node, obj).Build()
			tracker := freshness.New()
			if tt.stalePV {
				tracker.Wrote(pv.UID, "1000000")
			}
			force := forcesync.New(c)
			recorder := events.NewFakeRecorder(10)
			p := &Pass{
				Client:     c,
				Lister:     lister{published: tt.published, err: tt.listErr},
				Resolver:   &attachment.Resolver{Client: c, APIReader: c, Freshness: tracker, DriverName: driver},
				Force:      force,
				DriverName: driver,
				Recorder:   recorder,
			}
			p.once(ctx)

			if got := force.Len(); (got == 1) != (tt.want != 0) || got > 1 {
				t.Fatalf("marks = %d, want a mark: %v", got, tt.want != 0)
			}
			if tt.want != 0 && !force.Consume(obj.UID, tt.want) {
				t.Fatalf("the mark is not for kind %v", tt.want)
			}
			select {
			case e := <-recorder.Events:
				if tt.reason == "" || !strings.Contains(e, "Warning "+tt.reason) {
					t.Fatalf("event %q, want reason %q", e, tt.reason)
				}
			default:
				if tt.reason != "" {
					t.Fatalf("no event, want reason %q", tt.reason)
				}
			}
		})
	}
}
