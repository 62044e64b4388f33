package attachment

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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/csi-attacher/csi-attacher/internal/freshness"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

const driver = "csi.example.com"

func csiPV(name, handle string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: driver, VolumeHandle: handle, ReadOnly: true,
				VolumeAttributes:           map[string]string{"tier": "gold"},
				ControllerPublishSecretRef: &corev1.SecretReference{Namespace: "ns", Name: "publish"},
			}},
		},
	}
}

func attachmentOf(pv string, annotations map[string]string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va-" + pv, Annotations: annotations},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "node-1",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pv)}},
	}
}

func csiNode(name, nodeID string) *storagev1.CSINode {
	return &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: driver, NodeID: nodeID}}},
	}
}

// newResolver serves objs from a fake cache and the Secret from a fake API
// reader; stale PVs are recorded in the tracker as written after the copy
// the cache holds.
func newResolver(t *testing.T, objs []client.Object, stale ...string) *Resolver {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
	secrets := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "publish"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}).Build()
	tracker := freshness.New()
	for _, name := range stale {
		pv := &corev1.PersistentVolume{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, pv); err != nil {
			t.Fatal(err)
		}
		tracker.Wrote(pv.UID, "1000000")
	}
	return &Resolver{Client: c, APIReader: secrets, Freshness: tracker, DriverName: driver, PublishReadonly: true}
}

// Source: the PV from the cache or the inline spec, or an error that names
// the object and tells a stale copy (retried quietly) and an invalid
// object (terminal) from the rest.
func TestResolverSource(t *testing.T) {
	otherDriver := csiPV("pv-other", "h-other")
	otherDriver.Spec.CSI.Driver = "other.example.com"
	inline := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va-inline"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "node-1",
			Source: storagev1.VolumeAttachmentSource{InlineVolumeSpec: &corev1.PersistentVolumeSpec{
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "h-inline"}},
			}}},
	}
	both := attachmentOf("pv-1", nil)
	both.Spec.Source.InlineVolumeSpec = inline.Spec.Source.InlineVolumeSpec
	r := newResolver(t, []client.Object{csiPV("pv-1", "h-1"), csiPV("pv-stale", "h-stale"), otherDriver}, "pv-stale")

	tests := []struct {
		name       string
		va         *storagev1.VolumeAttachment
		wantHandle string
		wantPV     bool
		wantErr    string // a substring naming the object and cause
		cacheBehind,
		invalid bool
	}{
		{name: "a CSI PersistentVolume", va: attachmentOf("pv-1", nil), wantHandle: "h-1", wantPV: true},
		{name: "an inline volume", va: inline, wantHandle: "h-inline"},
		{name: "a missing PersistentVolume", va: attachmentOf("pv-missing", nil), wantErr: `PersistentVolume "pv-missing" not found`},
		{name: "a PersistentVolume older than our own write", va: attachmentOf("pv-stale", nil),
			wantErr: `PersistentVolume "pv-stale"`, cacheBehind: true},
		{name: "another driver's PersistentVolume", va: attachmentOf("pv-other", nil),
			wantErr: `PersistentVolume "pv-other"`, invalid: true},
		{name: "both sources", va: both, wantErr: "both", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, pv, err := r.Source(context.Background(), tt.va)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if got := errors.Is(err, freshness.ErrCacheBehind); got != tt.cacheBehind {
					t.Errorf("cache behind = %v, want %v (err %v)", got, tt.cacheBehind, err)
				}
				if got := volume.Invalid(err); got != tt.invalid {
					t.Errorf("invalid = %v, want %v (err %v)", got, tt.invalid, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if src.CSI().VolumeHandle != tt.wantHandle {
				t.Errorf("handle = %q, want %q", src.CSI().VolumeHandle, tt.wantHandle)
			}
			if (pv != nil) != tt.wantPV || src.Inline() == tt.wantPV {
				t.Errorf("pv = %v, inline = %v, want a PV: %v", pv, src.Inline(), tt.wantPV)
			}
		})
	}
}

// The node ID: for publish the CSINode's as it is now; for unpublish (and
// the drift pass) the annotation written before the publish first, the
// CSINode only for an attachment from before the annotation.
func TestResolverNodeIDs(t *testing.T) {
	annotated := map[string]string{volume.NodeIDAnnotation: "old-id"}
	tests := []struct {
		name         string
		objs         []client.Object
		va           *storagev1.VolumeAttachment
		publish      string // node ID of the publish request, or the error substring
		published    string // node ID of the unpublish request, or the error substring
		publishErr   bool
		publishedErr bool
	}{
		{name: "no annotation", objs: []client.Object{csiNode("node-1", "new-id")}, va: attachmentOf("pv-1", nil),
			publish: "new-id", published: "new-id"},
		{name: "annotated with an earlier ID", objs: []client.Object{csiNode("node-1", "new-id")}, va: attachmentOf("pv-1", annotated),
			publish: "new-id", published: "old-id"},
		{name: "annotated, CSINode gone", va: attachmentOf("pv-1", annotated),
			publish: `CSINode "node-1" not found`, publishErr: true, published: "old-id"},
		{name: "no annotation, CSINode gone", va: attachmentOf("pv-1", nil),
			publish: `CSINode "node-1" not found`, publishErr: true, published: `CSINode "node-1" not found`, publishedErr: true},
		{name: "driver not on the node", objs: []client.Object{&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}}, va: attachmentOf("pv-1", nil),
			publish: "does not contain driver " + driver, publishErr: true, published: "does not contain driver " + driver, publishedErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, append(tt.objs, csiPV("pv-1", "h-1")))
			ctx := context.Background()
			src, _, err := r.Source(ctx, tt.va)
			if err != nil {
				t.Fatal(err)
			}
			req, err := r.PublishRequest(ctx, tt.va, src)
			check(t, "publish", req.NodeID, err, tt.publish, tt.publishErr)
			ureq, err := r.UnpublishRequest(ctx, tt.va)
			check(t, "unpublish", ureq.NodeID, err, tt.published, tt.publishedErr)
		})
	}
}

func check(t *testing.T, what, got string, err error, want string, wantErr bool) {
	t.Helper()
	switch {
	case wantErr && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: err = %v, want one containing %q", what, err, want)
	case !wantErr && err != nil:
		t.Errorf("%s: err = %v", what, err)
	case !wantErr && got != want:
		t.Errorf("%s: node ID = %q, want %q", what, got, want)
	}
}

// What a publish request carries: the handle, the volume context, the
// Secret read from the API, read-only only with PUBLISH_READONLY, and the
// capability from the access modes.
func TestResolverPublishRequest(t *testing.T) {
	for _, publishReadonly := range []bool{true, false} {
		r := newResolver(t, []client.Object{csiPV("pv-1", "h-1"), csiNode("node-1", "id-1")})
		r.PublishReadonly = publishReadonly
		ctx := context.Background()
		va := attachmentOf("pv-1", nil)
		src, _, err := r.Source(ctx, va)
		if err != nil {
			t.Fatal(err)
		}
		req, err := r.PublishRequest(ctx, va, src)
		if err != nil {
			t.Fatal(err)
		}
		if req.VolumeID != "h-1" || req.NodeID != "id-1" || req.VolumeContext["tier"] != "gold" || req.Secrets["password"] != "s3cret" {
			t.Errorf("request = %+v", req)
		}
		if req.ReadOnly != publishReadonly {
			t.Errorf("PUBLISH_READONLY %v: readOnly = %v", publishReadonly, req.ReadOnly)
		}
		if req.Capability.GetAccessMode() == nil || req.Capability.GetMount() == nil {
			t.Errorf("capability = %v, want a mount with an access mode", req.Capability)
		}
	}

	// A Secret that cannot be read names it.
	r := newResolver(t, []client.Object{csiPV("pv-1", "h-1"), csiNode("node-1", "id-1")})
	pv := csiPV("pv-1", "h-1")
	pv.Spec.CSI.ControllerPublishSecretRef.Name = "missing"
	src, err := volume.PVSource(pv, driver)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PublishRequest(context.Background(), attachmentOf("pv-1", nil), src); err == nil || !strings.Contains(err.Error(), `"ns/missing"`) {
		t.Errorf("err = %v, want one naming the Secret ns/missing", err)
	}
}
