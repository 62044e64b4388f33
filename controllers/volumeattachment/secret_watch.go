package volumeattachment

import (
	"context"
	"fmt"

	"github.com/csi-attacher/csi-attacher/internal/cache"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// The Secret watch. An attachment whose ControllerPublish Secret is missing
// or wrong fails with an error of ours and backs off, up to
// --retry-interval-max. With the watch, the Secret's creation or update
// wakes the attachments that name it at once. The watch is metadata only
// and the cache keeps four fields of each Secret: Secret data never enters
// the process through it (the attach path still reads the Secret with a
// direct GET).
//
// It needs list and watch on Secrets in every namespace, which the shipped
// RBAC deliberately does not grant; main.go reviews the rights
// (rights.SecretWatchRights) and sets WatchSecrets only when they are granted.

// secretChanged passes Secrets that appear, and updates that bring a new
// resourceVersion (the data may have changed). Resyncs repeat the version of
// every Secret of the cluster and are dropped, as are deletions: a Secret
// going away cannot make an attachment work. So are the Secrets of the
// informer's initial list: they appeared before the attachments' own
// initial list, which queues every attachment with work to do (see
// specOrDeletionChanged).
func secretChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// attachmentsUsingSecret maps a Secret to the VolumeAttachments of our
// driver that name it as their ControllerPublish secret, through their PV or
// in their inline spec, and that retryOnSecretChange selects for the
// controller that handles deleting (detach) or not (attach).
func (r *Reconciler) attachmentsUsingSecret(deleting bool) handler.MapFunc {
	return func(ctx context.Context, secret client.Object) []reconcile.Request {
		vas, err := r.secretUsers(ctx, cache.SecretKey(secret.GetNamespace(), secret.GetName()))
		if err != nil {
			log.FromContext(ctx).Error(err, "Failed to find the VolumeAttachments that use a Secret", "Secret", klog.KObj(secret))
			return nil
		}
		var reqs []reconcile.Request
		for _, va := range vas {
			if r.retryOnSecretChange(va, deleting) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(va)})
			}
		}
		return reqs
	}
}

// secretUsers lists, from the cache, the VolumeAttachments whose PV or
// inline spec names the Secret key ("namespace/name") as its
// controllerPublishSecretRef. The lists are read, never changed, so they
// skip the cache's deep copies: a Secret shared by thousands of volumes
// costs index lookups, not copies.
func (r *Reconciler) secretUsers(ctx context.Context, key string) ([]*storagev1.VolumeAttachment, error) {
	pvs := &corev1.PersistentVolumeList{}
	if err := r.Client.List(ctx, pvs, client.MatchingFields{cache.IndexPVByPublishSecret: key}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list PersistentVolumes by Secret %s: %w", key, err)
	}
	var out []*storagev1.VolumeAttachment
	add := func(list *storagev1.VolumeAttachmentList) {
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	}
	for i := range pvs.Items {
		vas := &storagev1.VolumeAttachmentList{}
		if err := r.Client.List(ctx, vas, client.MatchingFields{cache.IndexVAByPV: pvs.Items[i].Name}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("failed to list VolumeAttachments of PersistentVolume %q: %w", pvs.Items[i].Name, err)
		}
		add(vas)
	}
	inline := &storagev1.VolumeAttachmentList{}
	if err := r.Client.List(ctx, inline, client.MatchingFields{cache.IndexVAByInlinePublishSecret: key}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list inline VolumeAttachments by Secret %s: %w", key, err)
	}
	add(inline)
	return out, nil
}

// retryOnSecretChange selects the VolumeAttachments a change of their
// Secret should retry at once, on the side the caller's controller handles:
//   - attach (deleting false): ours, not being deleted, and not attached yet
//     or with an attach error (a failed forced re-publish keeps attached);
//   - detach (deleting true): ours, being deleted, still holding our
//     finalizer, with a detach error. One being detached without error is
//     mid-way and finishes without help.
//
// Healthy ones are left out, so rotating a Secret shared by thousands of
// attached volumes queues nothing.
func (r *Reconciler) retryOnSecretChange(va *storagev1.VolumeAttachment, deleting bool) bool {
	switch {
	case va.Spec.Attacher != r.DriverName:
		return false
	case va.DeletionTimestamp.IsZero():
		return !deleting && (!va.Status.Attached || va.Status.AttachError != nil)
	default:
		return deleting && controllerutil.ContainsFinalizer(va, r.finalizer) && va.Status.DetachError != nil
	}
}
