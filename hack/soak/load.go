package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

func pvName(i int) string    { return fmt.Sprintf("soak-pv-%d", i) }
func handle(i int) string    { return fmt.Sprintf("soak-vol-%d", i) }
func vaName(i, c int) string { return fmt.Sprintf("soak-va-%d-%d", i, c) }

func (s *soak) createObjects(ctx context.Context) error {
	csiNode := testbed.CSINode(nodeName, storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID})
	if _, err := s.cs.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return err
	}
	for i := range s.cfg.n {
		pv := testbed.PV(pvName(i), driverName, handle(i))
		if _, err := s.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	logf("created 1 CSINode and %d PersistentVolumes", s.cfg.n)
	return nil
}

func newVA(name string, i int) *storagev1.VolumeAttachment {
	return testbed.VA(name, driverName, nodeName, pvName(i))
}

// cycle attaches and detaches slot i until ctx ends; an even slot then
// leaves one VolumeAttachment live.
func (s *soak) cycle(ctx context.Context, i int) {
	rng := rand.New(rand.NewPCG(s.cfg.seed, uint64(i)))
	bg := context.WithoutCancel(ctx)
	for c := 0; ctx.Err() == nil; c++ {
		name := vaName(i, c)
		if _, err := s.cs.StorageV1().VolumeAttachments().Create(bg, newVA(name, i), metav1.CreateOptions{}); err != nil {
			logf("warning: creating %s: %v", name, err)
			time.Sleep(time.Second)
			continue
		}
		if rng.IntN(5) == 0 {
			// Delete mid-attach.
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			s.earlyDeletes.Add(1)
		} else {
			s.waitFor(bg, name, 30*time.Second, func(va *storagev1.VolumeAttachment) bool { return va != nil && va.Status.Attached })
		}
		if ctx.Err() != nil && i%2 == 0 {
			// The live one this slot keeps.
			return
		}
		if err := s.cs.StorageV1().VolumeAttachments().Delete(bg, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			logf("warning: deleting %s: %v", name, err)
		}
		// Faults may hold a detach for a while; a slot moves on after 30 s
		// and the check at the end finds whatever is really stuck.
		s.waitFor(bg, name, 30*time.Second, func(va *storagev1.VolumeAttachment) bool { return va == nil })
		s.cycles.Add(1)
	}
	if i%2 == 0 {
		// Stopped between cycles: keep one live attachment anyway.
		if _, err := s.cs.StorageV1().VolumeAttachments().Create(bg, newVA(vaName(i, 1<<20), i), metav1.CreateOptions{}); err != nil {
			logf("warning: creating the final VA of slot %d: %v", i, err)
		}
	}
}
