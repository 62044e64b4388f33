package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// check waits for convergence and counts what went wrong.
func (s *soak) check(ctx context.Context) (bool, error) {
	list := func() ([]storagev1.VolumeAttachment, error) {
		l, err := s.cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	// Live: even slots' last VA, not being deleted. Everything else is
	// being deleted and must go.
	deadline := time.Now().Add(s.cfg.converge)
	var vas []storagev1.VolumeAttachment
	var err error
	for {
		vas, err = list()
		if err != nil {
			return false, err
		}
		pending := 0
		for _, va := range vas {
			if va.DeletionTimestamp != nil || !va.Status.Attached {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	// Deleted VAs get stuckAfter from their deletion (or from now, at least
	// the convergence time has passed already).
	stuckVAs := 0
	unconverged := 0
	live := map[string]storagev1.VolumeAttachment{} // by volume handle
	for _, va := range vas {
		if va.DeletionTimestamp != nil {
			if time.Since(va.DeletionTimestamp.Time) > stuckAfter {
				stuckVAs++
				logf("stuck: VolumeAttachment %s deleted %s ago, finalizers %v, detachError %v", va.Name,
					time.Since(va.DeletionTimestamp.Time).Round(time.Second), va.Finalizers, va.Status.DetachError)
			} else {
				unconverged++
			}
			continue
		}
		var i, c int
		if _, err := fmt.Sscanf(va.Name, "soak-va-%d-%d", &i, &c); err != nil {
			continue
		}
		live[handle(i)] = va
		if !va.Status.Attached {
			unconverged++
			logf("unconverged: VolumeAttachment %s not attached, attachError %v", va.Name, va.Status.AttachError)
		}
	}
	pubs := s.driver.Publications()
	leaked, mismatched := 0, 0
	for vol, nodes := range pubs {
		va, ok := live[vol]
		if !ok || !va.Status.Attached {
			leaked++
			logf("leaked publication: %s on %v without a live attached VA", vol, nodes)
		}
	}
	for vol, va := range live {
		published := slices.Contains(pubs[vol], nodeID)
		if va.Status.Attached != published {
			mismatched++
			logf("mismatch: VA %s attached=%v, driver published=%v", va.Name, va.Status.Attached, published)
		}
	}

	// Last: delete everything and wait for it to go.
	for _, va := range vas {
		if va.DeletionTimestamp == nil {
			_ = s.cs.StorageV1().VolumeAttachments().Delete(ctx, va.Name, metav1.DeleteOptions{})
		}
	}
	for i := range s.cfg.n {
		_ = s.cs.CoreV1().PersistentVolumes().Delete(ctx, pvName(i), metav1.DeleteOptions{})
	}
	stuckPVs := 0
	deadline = time.Now().Add(stuckAfter)
	for {
		vas, err = list()
		if err != nil {
			return false, err
		}
		pvs, err := s.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if (len(vas) == 0 && len(pvs.Items) == 0) || time.Now().After(deadline) {
			stuckPVs = len(pvs.Items)
			for _, pv := range pvs.Items {
				logf("stuck: PersistentVolume %s, finalizers %v", pv.Name, pv.Finalizers)
			}
			if stuckVAs == 0 {
				stuckVAs = len(vas)
			}
			for _, va := range vas {
				logf("stuck: VolumeAttachment %s, finalizers %v", va.Name, va.Finalizers)
			}
			break
		}
		time.Sleep(time.Second)
	}
	finalLeaks := len(s.driver.Publications())
	if finalLeaks > leaked {
		leaked = finalLeaks
	}

	var failedCalls int
	for _, c := range s.driver.Calls() {
		if c.Code != codes.OK && (c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish) {
			failedCalls++
		}
	}
	fmt.Println()
	fmt.Println("SOAK RESULTS")
	fmt.Printf("  cycles (attach+detach)          %d\n", s.cycles.Load())
	fmt.Printf("  deleted mid-attach              %d\n", s.earlyDeletes.Load())
	fmt.Printf("  faults injected                 %d (latency spikes %d)\n", s.faults.Load(), s.spikes.Load())
	fmt.Printf("  driver restarts                 %d\n", s.restarts.Load())
	fmt.Printf("  failed Publish/Unpublish calls  %d\n", failedCalls)
	fmt.Printf("  live VAs checked                %d\n", len(live))
	fmt.Printf("  leaked publications             %d\n", leaked)
	fmt.Printf("  stuck finalizers (VAs)          %d\n", stuckVAs)
	fmt.Printf("  stuck finalizers (PVs)          %d\n", stuckPVs)
	fmt.Printf("  status/driver mismatches        %d\n", mismatched)
	fmt.Printf("  unconverged live VAs            %d\n", unconverged)
	bad := leaked+stuckVAs+stuckPVs+mismatched+unconverged > 0
	if bad {
		fmt.Println("SOAK FAILED")
	} else {
		fmt.Println("SOAK PASSED")
	}
	return bad, nil
}
