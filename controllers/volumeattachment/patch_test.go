package volumeattachment

import (
	"encoding/json"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestStatusMergePatch checks that the status-only patch is exactly the one
// client.MergeFrom computes from the whole object.
func TestStatusMergePatch(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	failed := &storagev1.VolumeError{Time: at, Message: "rpc error: code = Internal desc = boom", ErrorCode: ptr.To(int32(13))}
	tests := []struct {
		name   string
		base   storagev1.VolumeAttachmentStatus
		change func(*storagev1.VolumeAttachmentStatus)
	}{
		{"attached", storagev1.VolumeAttachmentStatus{}, func(s *storagev1.VolumeAttachmentStatus) {
			s.Attached = true
			s.AttachmentMetadata = map[string]string{"devicePath": "/dev/xvdb"}
		}},
		{"attached after an error", storagev1.VolumeAttachmentStatus{AttachError: failed}, func(s *storagev1.VolumeAttachmentStatus) {
			s.Attached = true
			s.AttachError = nil
		}},
		{"metadata replaced", storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"a": "1", "b": "2"}},
			func(s *storagev1.VolumeAttachmentStatus) { s.AttachmentMetadata = map[string]string{"b": "3"} }},
		{"error without code replaces one with code", storagev1.VolumeAttachmentStatus{DetachError: failed}, func(s *storagev1.VolumeAttachmentStatus) {
			s.DetachError = &storagev1.VolumeError{Time: at, Message: `PersistentVolume "pv" not found`}
		}},
		{"detached", storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"a": "1"}, DetachError: failed},
			func(s *storagev1.VolumeAttachmentStatus) { *s = storagev1.VolumeAttachmentStatus{} }},
		{"unchanged", storagev1.VolumeAttachmentStatus{Attached: true}, func(*storagev1.VolumeAttachmentStatus) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := &storagev1.VolumeAttachment{
				ObjectMeta: metav1.ObjectMeta{Name: "va", ResourceVersion: "7", Finalizers: []string{"external-attacher/x"}},
				Spec:       storagev1.VolumeAttachmentSpec{Attacher: "x", NodeName: "n", Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv")}},
				Status:     tt.base,
			}
			va := base.DeepCopy()
			tt.change(&va.Status)
			want, err := client.MergeFrom(base).Data(va)
			if err != nil {
				t.Fatal(err)
			}
			got, err := statusMergePatch(&base.Status, &va.Status)
			if err != nil {
				t.Fatal(err)
			}
			if string(want) == "{}" {
				if got != nil {
					t.Fatalf("patch %s for an unchanged status", got)
				}
				return
			}
			var w, g any
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("invalid patch %s: %v", got, err)
			}
			wj, _ := json.Marshal(w)
			gj, _ := json.Marshal(g)
			if string(wj) != string(gj) {
				t.Fatalf("patch = %s, want %s", gj, wj)
			}
		})
	}
}
