// Package cluster runs a real cluster on one machine for the e2e suite
// (test/e2e) and the cluster benchmark (hack/bench -cluster): etcd and kube-apiserver (through envtest),
// kube-controller-manager with the controllers of the volume flow,
// kube-scheduler, kwok simulating the nodes and their Pods, the fake CSI
// driver (hack/fakedriver) as its own process, and the attacher as the
// binary built from the tree, started with the shipped manifest's flags and
// RBAC. Each is a process of its own with its log in the cluster's
// directory. VolumeAttachments are never created by hand here: they come
// from kube-controller-manager's attach-detach controller, for Pods that
// kube-scheduler placed.
//
// Snapshot reads what a user and the backend see (VolumeAttachments, the
// Nodes' status.volumesAttached and the driver's publications) and checks
// them against each other.
package cluster
