package main

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// vaState is what the demo shows of the VolumeAttachment.
type vaState struct {
	exists             bool
	deleting           bool
	finalizers         []string
	nodeID             string
	attached           bool
	attachmentMetadata map[string]string
	attachError        string
	detachError        string
}

// pvState is what the demo shows of the PersistentVolume.
type pvState struct {
	exists     bool
	deleting   bool
	finalizers []string
}

// apply records a new state and prints what changed. A deleted object is
// applied twice: its last state, then its absence.
func (d *demo) apply(ev objEvent) {
	if ev.call != nil {
		d.printCall(ev)
		return
	}
	d.eventAt = ev.at
	if ev.pv {
		pv, _ := ev.obj.(*corev1.PersistentVolume)
		if pv != nil {
			d.applyPV(pv)
		}
		if ev.deleted || pv == nil {
			d.applyPV(nil)
		}
		return
	}
	va, _ := ev.obj.(*storagev1.VolumeAttachment)
	if va != nil {
		d.applyVA(va)
	}
	if ev.deleted || va == nil {
		d.applyVA(nil)
	}
}

func (d *demo) applyVA(va *storagev1.VolumeAttachment) {
	var s vaState
	if va != nil {
		s = vaState{
			exists:             true,
			deleting:           va.DeletionTimestamp != nil,
			finalizers:         va.Finalizers,
			nodeID:             va.Annotations[volume.NodeIDAnnotation],
			attached:           va.Status.Attached,
			attachmentMetadata: va.Status.AttachmentMetadata,
		}
		if e := va.Status.AttachError; e != nil {
			s.attachError = e.Message
		}
		if e := va.Status.DetachError; e != nil {
			s.detachError = e.Message
		}
	}
	old := d.va
	d.va = s
	obj := "VolumeAttachment " + vaName
	if !s.exists {
		if old.exists {
			d.vaGoneAt = d.eventAt
			d.gone(obj, old.finalizers)
		}
		return
	}
	if !slices.Equal(old.finalizers, s.finalizers) {
		d.event(obj, "finalizers=%s", formatList(s.finalizers))
	}
	if old.nodeID != s.nodeID {
		d.event(obj, "annotation %s=%q", volume.NodeIDAnnotation, s.nodeID)
	}
	if old.attachError != s.attachError && s.attachError != "" {
		d.event(obj, "status.attachError=%q", s.attachError)
	}
	if old.detachError != s.detachError && s.detachError != "" {
		d.event(obj, "status.detachError=%q", s.detachError)
	}
	if !maps.Equal(old.attachmentMetadata, s.attachmentMetadata) {
		d.event(obj, "status.attachmentMetadata=%s", formatMap(s.attachmentMetadata))
	}
	if old.attached != s.attached {
		if s.attached && d.attachedAt.IsZero() {
			d.attachedAt = d.eventAt
		}
		d.event(obj, "status.attached=%t", s.attached)
	}
	if !old.deleting && s.deleting {
		d.event(obj, "deletionTimestamp set, the finalizer holds it until the volume is detached")
	}
}

func (d *demo) applyPV(pv *corev1.PersistentVolume) {
	var s pvState
	if pv != nil {
		s = pvState{exists: true, deleting: pv.DeletionTimestamp != nil, finalizers: pv.Finalizers}
	}
	old := d.pv
	d.pv = s
	obj := "PersistentVolume " + pvName
	if !s.exists {
		if old.exists {
			d.gone(obj, old.finalizers)
		}
		return
	}
	if !slices.Equal(old.finalizers, s.finalizers) {
		d.event(obj, "finalizers=%s", formatList(s.finalizers))
	}
	if !old.deleting && s.deleting {
		d.event(obj, "deletionTimestamp set, waiting for the finalizers to be removed")
	}
}

// gone reports that a watched object was deleted. The API server removes an
// object in the same update that takes its last finalizer away, and the
// deletion event carries the state before that update, so the removal of
// the finalizers is shown here.
func (d *demo) gone(obj string, lastFinalizers []string) {
	if len(lastFinalizers) > 0 {
		d.event(obj, "finalizers=[] (%s removed)", strings.Join(lastFinalizers, ", "))
	}
	d.event(obj, "deleted, gone from the API server")
}
