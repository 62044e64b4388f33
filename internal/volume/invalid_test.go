package volume

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInvalid checks which errors mark an attachment that can never work as
// it is: every error of this package about the objects themselves, as the
// functions return them, and nothing that waits for another object or
// comes from elsewhere.
func TestInvalid(t *testing.T) {
	t.Parallel()
	pvErr := func(spec corev1.PersistentVolumeSpec) error {
		_, err := PVSource(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: spec}, testDriver)
		return err
	}
	modesErr := func(modes ...corev1.PersistentVolumeAccessMode) error {
		_, err := AccessMode(modes, true)
		return err
	}
	_, inlineErr := InlineSource(vaWith(nil, &corev1.PersistentVolumeSpec{}), testDriver)
	_, bothErr := PVNameOf(vaWith(ptrTo("pv1"), csiSpec(testDriver, "h")))
	_, neitherErr := PVNameOf(vaWith(nil, nil))
	// Azure File without a secret namespace cannot be translated.
	azureFile := corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
		AzureFile: &corev1.AzureFilePersistentVolumeSource{SecretName: "s", ShareName: "share"},
	}}

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "both sources", err: bothErr, want: true},
		{name: "neither source", err: neitherErr, want: true},
		{name: "inline spec without CSI", err: inlineErr, want: true},
		{name: "PV without CSI source", err: pvErr(corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}), want: true},
		{name: "PV of another driver", err: pvErr(*csiSpec("other", "h")), want: true},
		{name: "PV with an empty handle", err: pvErr(*csiSpec(testDriver, "")), want: true},
		{name: "in-tree PV that cannot be translated", err: pvErr(azureFile), want: true},
		{name: "no access modes", err: modesErr(), want: true},
		{name: "ReadWriteOncePod with others", err: modesErr(corev1.ReadWriteOncePod, corev1.ReadWriteOnce), want: true},
		{name: "ReadOnlyMany with ReadWriteOnce", err: modesErr(corev1.ReadOnlyMany, corev1.ReadWriteOnce), want: true},
		{name: "unknown access mode", err: modesErr("Bogus"), want: true},
		{name: "wrapped again by a caller", err: fmt.Errorf("VolumeAttachment va1: %w", bothErr), want: true},
		{name: "nil", err: nil, want: false},
		{name: "a missing object", err: errors.New(`PersistentVolume "pv1" not found`), want: false},
		{name: "a CSINode without the driver", err: func() error {
			_, err := NodeID(&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, testDriver)
			return err
		}(), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.want && tt.err == nil {
				t.Fatal("the case produced no error")
			}
			if got := Invalid(tt.err); got != tt.want {
				t.Fatalf("Invalid(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
