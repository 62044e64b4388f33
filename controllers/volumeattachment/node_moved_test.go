package volumeattachment

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// recordingAttacher records Unpublish calls and answers them with err.
type recordingAttacher struct {
	unpublished []csi.UnpublishRequest
	err         error
}

func (a *recordingAttacher) Publish(context.Context, csi.PublishRequest) (map[string]string, error) {
	return nil, nil
}

func (a *recordingAttacher) Unpublish(_ context.Context, req csi.UnpublishRequest) error {
	a.unpublished = append(a.unpublished, req)
	return a.err
}

// TestUnpublishPreviousNodeID checks when an attach unpublishes the node's
// previous ID before the annotation moves: only with our finalizer and an
// annotation naming another ID than the CSINode gives now.
func TestUnpublishPreviousNodeID(t *testing.T) {
	const (
		driver    = "moved.csi.test"
		finalizer = "external-attacher/moved-csi-test"
	)
	req := csi.PublishRequest{VolumeID: "vol", NodeID: "new", Secrets: map[string]string{"k": "v"}, Migrated: true}
	tests := []struct {
		name       string
		finalizers []string
		annotation string
		attachErr  error
		want       []csi.UnpublishRequest
		wantErr    string
	}{
		{name: "first attempt", want: nil},
		{name: "same node ID", finalizers: []string{finalizer}, annotation: "new"},
		{name: "no finalizer of ours", finalizers: []string{"other/finalizer"}, annotation: "old"},
		{name: "node registered again", finalizers: []string{finalizer}, annotation: "old",
			want: []csi.UnpublishRequest{{VolumeID: "vol", NodeID: "old", Secrets: map[string]string{"k": "v"}, Migrated: true}}},
		{name: "unpublish fails", finalizers: []string{finalizer}, annotation: "old",
			attachErr: status.Error(codes.Internal, "backend refuses"),
			want:      []csi.UnpublishRequest{{VolumeID: "vol", NodeID: "old", Secrets: map[string]string{"k": "v"}, Migrated: true}},
			wantErr:   `node n1 registered again with node ID "new"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			a := &recordingAttacher{err: tc.attachErr}
			r := &Reconciler{Attacher: a, DriverName: driver, finalizer: finalizer}
			va := &storagev1.VolumeAttachment{
				ObjectMeta: metav1.ObjectMeta{Name: "va", Finalizers: tc.finalizers},
				Spec:       storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "n1"},
			}
			if tc.annotation != "" {
				va.Annotations = map[string]string{volume.NodeIDAnnotation: tc.annotation}
			}
			err := r.unpublishPreviousNodeID(t.Context(), va, req)
			g.Expect(a.unpublished).To(Equal(tc.want))
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			code, ok := csi.Code(err)
			g.Expect(ok).To(BeTrue())
			g.Expect(code).To(Equal(codes.Internal), "the gRPC code is kept for errorCode")
		})
	}
}
