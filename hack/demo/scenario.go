package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
	"github.com/csi-attacher/csi-attacher/internal/testbed"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// showMetrics prints the attacher's own metrics that the run moved: what an
// operator would see on a dashboard. A failure to scrape is only reported.
func (d *demo) showMetrics(ctx context.Context) {
	d.step("the attacher's metrics (%s), csi_attacher_* samples that are not zero:", d.metricsURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.metricsURL, nil)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.detail("cannot scrape: %v", err)
		return
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "csi_attacher_") || strings.HasSuffix(line, " 0") || strings.Contains(line, "_bucket{") {
			continue
		}
		d.detail("%s", line)
	}
}

// attach creates the objects and waits for the attacher to attach the volume.
func (d *demo) attach(ctx context.Context) (time.Duration, error) {
	d.step("creating a CSINode, a PersistentVolume and a VolumeAttachment")
	csiNode := testbed.CSINode(nodeName, storagev1.CSINodeDriver{Name: driverName, NodeID: nodeID})
	if err := d.c.Create(ctx, csiNode); err != nil {
		return 0, fmt.Errorf("creating CSINode %s: %w", nodeName, err)
	}
	d.detail("created CSINode %s: driver %s has nodeID %s", nodeName, driverName, nodeID)

	pv := testbed.PV(pvName, driverName, volumeID)
	if err := d.c.Create(ctx, pv); err != nil {
		return 0, fmt.Errorf("creating PersistentVolume %s: %w", pvName, err)
	}
	d.detail("created PersistentVolume %s: CSI driver %s, volumeHandle %s, 1Gi, RWO, ext4", pvName, driverName, volumeID)

	va := testbed.VA(vaName, driverName, nodeName, pvName)
	created := time.Now()
	if err := d.c.Create(ctx, va); err != nil {
		return 0, fmt.Errorf("creating VolumeAttachment %s: %w", vaName, err)
	}
	d.detail("created VolumeAttachment %s: attacher %s, node %s, PersistentVolume %s", vaName, driverName, nodeName, pvName)

	if err := d.waitFor(ctx, "VolumeAttachment "+vaName+" was not attached within "+stepTimeout.String(),
		func() bool { return d.va.attached }); err != nil {
		return 0, err
	}
	attachTime := d.attachedAt.Sub(created)
	finalizer := volume.FinalizerName(driverName)
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" did not get the finalizer "+finalizer+" within "+stepTimeout.String(),
		func() bool { return slices.Contains(d.pv.finalizers, finalizer) }); err != nil {
		return 0, err
	}
	d.detail("attached %d ms after the VolumeAttachment was created", attachTime.Milliseconds())

	d.printPublishRecord()
	d.printVAStatus(ctx)
	return attachTime, nil
}

// printPublishRecord shows what the driver was asked to do.
func (d *demo) printPublishRecord() {
	var call *fake.Call
	for _, c := range d.driver.Calls() {
		if c.Method == fake.MethodPublish && c.VolumeID == volumeID {
			call = &c
		}
	}
	if call == nil {
		d.println("\n  The driver has no ControllerPublishVolume call for %s on record.", volumeID)
		return
	}
	capability := "none"
	if vc := call.Capability; vc != nil {
		capability = vc.GetAccessMode().GetMode().String()
		if m := vc.GetMount(); m != nil {
			capability += ", mount fsType=" + m.GetFsType()
		} else if vc.GetBlock() != nil {
			capability += ", block"
		}
	}
	d.table("Driver record of the ControllerPublishVolume call:", [][2]string{
		{"volume ID", call.VolumeID},
		{"node ID", call.NodeID},
		{"readonly", fmt.Sprint(call.ReadOnly)},
		{"capability", capability},
		{"volume context", formatMap(call.VolumeContext)},
		{"result", fmt.Sprintf("%s in %s", call.Code, call.End.Sub(call.Start).Round(10*time.Microsecond))},
		{"published to", formatList(d.driver.Published(volumeID))},
	})
}

// printVAStatus shows the VolumeAttachment as the API server has it.
func (d *demo) printVAStatus(ctx context.Context) {
	va := &storagev1.VolumeAttachment{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: vaName}, va); err != nil {
		d.println("\n  Could not read VolumeAttachment %s: %v\n", vaName, err)
		return
	}
	attachError := "none"
	if e := va.Status.AttachError; e != nil {
		attachError = e.Message
	}
	d.table("VolumeAttachment "+vaName+" as stored by the API server:", [][2]string{
		{"spec.attacher", va.Spec.Attacher},
		{"spec.nodeName", va.Spec.NodeName},
		{"finalizers", formatList(va.Finalizers)},
		{"node-id annotation", va.Annotations[volume.NodeIDAnnotation]},
		{"status.attached", fmt.Sprint(va.Status.Attached)},
		{"attachmentMetadata", formatMap(va.Status.AttachmentMetadata)},
		{"attachError", attachError},
	})
	d.println("")
}

// detach deletes the VolumeAttachment and waits until it is gone.
func (d *demo) detach(ctx context.Context) (time.Duration, error) {
	d.step("deleting VolumeAttachment %s", vaName)
	began := time.Now()
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: vaName}}
	if err := d.c.Delete(ctx, va); err != nil {
		return 0, fmt.Errorf("deleting VolumeAttachment %s: %w", vaName, err)
	}
	if err := d.waitFor(ctx, "the driver got no ControllerUnpublishVolume call for "+volumeID+" within "+stepTimeout.String(),
		func() bool { return d.driver.CallCount(fake.MethodUnpublish, volumeID) > 0 }); err != nil {
		return 0, err
	}
	if err := d.waitFor(ctx, "VolumeAttachment "+vaName+" was not detached and removed within "+stepTimeout.String(),
		func() bool { return !d.va.exists }); err != nil {
		return 0, err
	}
	detachTime := d.vaGoneAt.Sub(began)
	d.detail("detached and removed %d ms after the delete", detachTime.Milliseconds())
	return detachTime, nil
}

// deletePV deletes the PersistentVolume, waits until the attacher has
// released it, and checks that the driver has nothing published.
func (d *demo) deletePV(ctx context.Context) error {
	d.step("deleting PersistentVolume %s", pvName)
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName}}
	if err := d.c.Delete(ctx, pv); err != nil {
		return fmt.Errorf("deleting PersistentVolume %s: %w", pvName, err)
	}
	finalizer := volume.FinalizerName(driverName)
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" still had the finalizer "+finalizer+" after "+stepTimeout.String(),
		func() bool { return !slices.Contains(d.pv.finalizers, finalizer) }); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "PersistentVolume "+pvName+" was not removed within "+stepTimeout.String(),
		func() bool { return !d.pv.exists }); err != nil {
		return err
	}
	published := d.driver.Published(volumeID)
	d.detail("driver: Published(%q) = %s", volumeID, formatList(published))
	if len(published) > 0 {
		return fmt.Errorf("volume %s is still published to %v after the detach", volumeID, published)
	}
	return nil
}
