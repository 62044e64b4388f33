package controllers

// The attacher's cluster-wide rights, the ClusterRole
// external-attacher-runner. `make manifests` generates
// config/rbac/role.yaml from the markers below with controller-gen, and the
// attacher (internal/doctor) reviews the rights it ships at start. The name
// and the rights are the reference kubernetes-csi/external-attacher's
// (deploy/kubernetes/rbac.yaml) plus get on Secrets and Events, so clusters
// can switch between the two without touching RBAC.
//
// Least privilege: PersistentVolumes and VolumeAttachments are only ever
// patched, never updated or created; nodes and CSIDrivers are not read at
// all. The Role external-attacher-cfg (the leader-election Lease and its
// Events) and the optional ClusterRole csi-attacher-secret-watch are
// hand-written files beside role.yaml: controller-gen names every role it
// writes after its roleName option.

// The PV finalizer external-attacher/<driver> is added and removed with
// patches.
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get;list;watch;patch

// Node ID lookup: spec.drivers[].nodeID of the VolumeAttachment's node.
// +kubebuilder:rbac:groups=storage.k8s.io,resources=csinodes,verbs=get;list;watch

// Finalizer and node-ID annotation on VolumeAttachments (metadata patches).
// +kubebuilder:rbac:groups=storage.k8s.io,resources=volumeattachments,verbs=get;list;watch;patch

// attached, attachmentMetadata, attachError and detachError.
// +kubebuilder:rbac:groups=storage.k8s.io,resources=volumeattachments/status,verbs=patch

// ControllerPublish/Unpublish secrets named by the StorageClass parameters
// csi.storage.k8s.io/controller-publish-secret-*. They are read one by one
// with a direct (uncached) GET, never listed or watched, so the attacher
// holds no copy of the cluster's Secrets. config/rbac/secret_watch_role.yaml
// optionally adds list and watch, for a metadata-only watch that retries
// attachments as soon as their Secret is fixed.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Warning Events for attach and detach failures on VolumeAttachments and
// PVs, in either Events API. The recorder patches an Event when it
// aggregates repeats.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
