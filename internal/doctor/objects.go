package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	storagev1 "k8s.io/api/storage/v1"
)

// CheckCSIDriver is the "csidriver" verdict; d is nil when the driver has
// no CSIDriver object.
func CheckCSIDriver(driverName string, d *storagev1.CSIDriver) Result {
	r := Result{Check: CheckCSIDriverName, Status: StatusOK}
	switch {
	case d == nil:
		r.Message = fmt.Sprintf("no CSIDriver object %s: Kubernetes then requires attach, so VolumeAttachments are "+
			"created for its volumes (create the object to make attachRequired explicit)", driverName)
	case d.Spec.AttachRequired == nil:
		r.Message = fmt.Sprintf("CSIDriver %s does not set attachRequired, which defaults to true", driverName)
	case *d.Spec.AttachRequired:
		r.Message = fmt.Sprintf("CSIDriver %s has attachRequired=true", driverName)
	default:
		r.Status = StatusWarn
		r.Message = fmt.Sprintf("CSIDriver %s has attachRequired=false: Kubernetes will never create "+
			"VolumeAttachments for this driver, so the attacher has nothing to do. If the driver needs "+
			"ControllerPublishVolume, recreate the CSIDriver with attachRequired: true (the field is immutable)", driverName)
	}
	return r
}

// CheckCSINodes is the "csinodes" verdict: nodes whose CSINode has no entry
// for the driver cannot have its volumes attached.
func CheckCSINodes(driverName string, nodes []storagev1.CSINode) Result {
	r := Result{Check: CheckCSINodesName}
	if len(nodes) == 0 {
		r.Status = StatusWarn
		r.Message = "there are no CSINodes at all: the kubelets have not registered any node (is this the right cluster?)"
		return r
	}
	var missing []string
	for _, n := range nodes {
		if !slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == driverName }) {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) == 0 {
		r.Status = StatusOK
		r.Message = fmt.Sprintf("all %d CSINodes have driver %s", len(nodes), driverName)
		return r
	}
	slices.Sort(missing)
	r.Status = StatusWarn
	r.Message = fmt.Sprintf("%d of %d CSINodes lack driver %s: volumes cannot be attached to them until the "+
		"driver's node plugin registers there (check its DaemonSet and node-driver-registrar on those nodes; "+
		"ignore nodes the driver does not run on)", len(missing), len(nodes), driverName)
	r.Details = limit(missing)
	return r
}

// CheckVolumeAttachments is the "attachments" verdict over the
// VolumeAttachments of the driver (others in vas are ignored) at time now.
func CheckVolumeAttachments(driverName string, vas []storagev1.VolumeAttachment, now time.Time) Result {
	r := Result{Check: CheckAttachmentsName}
	var failed, deleting, pending []string
	total := 0
	sorted := slices.Clone(vas)
	slices.SortFunc(sorted, func(a, b storagev1.VolumeAttachment) int { return strings.Compare(a.Name, b.Name) })
	for _, va := range sorted {
		if va.Spec.Attacher != driverName {
			continue
		}
		total++
		where := describeVA(&va)
		var age time.Duration
		if va.DeletionTimestamp != nil {
			age = now.Sub(va.DeletionTimestamp.Time)
		}
		longDeleting := va.DeletionTimestamp != nil && age > StuckAfter
		switch {
		case va.Status.AttachError != nil || va.Status.DetachError != nil:
			var parts []string
			if longDeleting {
				parts = append(parts, "deleting for "+round(age))
			}
			if e := va.Status.AttachError; e != nil {
				parts = append(parts, "attach error: "+trim(e.Message))
			}
			if e := va.Status.DetachError; e != nil {
				parts = append(parts, "detach error: "+trim(e.Message))
			}
			failed = append(failed, where+": "+strings.Join(parts, "; "))
		case longDeleting:
			deleting = append(deleting, fmt.Sprintf("%s: deleting for %s, finalizers %s", where, round(age),
				strings.Join(va.Finalizers, ", ")))
		case va.DeletionTimestamp == nil && !va.Status.Attached && now.Sub(va.CreationTimestamp.Time) > StuckAfter:
			pending = append(pending, fmt.Sprintf("%s: not attached after %s and no error", where,
				round(now.Sub(va.CreationTimestamp.Time))))
		}
	}
	if len(failed)+len(deleting)+len(pending) == 0 {
		r.Status = StatusOK
		r.Message = fmt.Sprintf("%d VolumeAttachments of %s, none failing or stuck", total, driverName)
		return r
	}
	r.Status = StatusWarn
	var what []string
	if len(failed) > 0 {
		what = append(what, fmt.Sprintf("%d with errors", len(failed)))
	}
	if len(deleting) > 0 {
		what = append(what, fmt.Sprintf("%d deleting for more than %s", len(deleting), round(StuckAfter)))
	}
	if len(pending) > 0 {
		what = append(what, fmt.Sprintf("%d not attached after %s without an error", len(pending), round(StuckAfter)))
	}
	r.Message = fmt.Sprintf("%d of %d VolumeAttachments of %s need attention: %s.", len(failed)+len(deleting)+len(pending),
		total, driverName, strings.Join(what, ", "))
	if len(failed) > 0 {
		r.Message += " Errors are retried with backoff; fix their cause (driver logs, kubectl describe volumeattachment NAME)."
	}
	if len(deleting) > 0 {
		r.Message += " A detach that never finishes keeps the finalizer: look for its detach errors in the attacher's logs."
	}
	if len(pending) > 0 {
		r.Message += " VolumeAttachments waiting without an error mean no attacher is processing them: is one running and leading?"
	}
	r.Details = limit(slices.Concat(failed, deleting, pending))
	return r
}

// describeVA names a VolumeAttachment with its volume and node.
func describeVA(va *storagev1.VolumeAttachment) string {
	var vol string
	switch {
	case va.Spec.Source.PersistentVolumeName != nil:
		vol = "pv " + *va.Spec.Source.PersistentVolumeName
	case va.Spec.Source.InlineVolumeSpec != nil:
		vol = "inline volume"
	default:
		vol = "no source"
	}
	return fmt.Sprintf("%s (%s, node %s)", va.Name, vol, va.Spec.NodeName)
}
