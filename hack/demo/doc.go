// Command demo is a live, readable walk-through of csi-attacher, run by
// `make demo`.
//
// It needs nothing but the envtest binaries (kube-apiserver and etcd, found
// through KUBEBUILDER_ASSETS) and a Go toolchain:
//
//  1. it starts a local control plane with controller-runtime's envtest and
//     writes a kubeconfig for it to a temporary directory;
//  2. it serves the fake CSI driver (internal/csi/fake) in-process on a unix
//     socket, printing one line per CSI call;
//  3. it builds the attacher binary from this repository and starts it as a
//     subprocess against the two, waiting for its /readyz;
//  4. it creates a CSINode, a PersistentVolume and a VolumeAttachment, and
//     prints every change the attacher makes to them (finalizers, the node-ID
//     annotation, status.attached, attachmentMetadata) as it happens;
//  5. it deletes the VolumeAttachment and then the PersistentVolume and shows
//     the detach, the finalizers going away and the objects disappearing;
//  6. it prints how long the attach and the detach took, and cleans up.
//
// Every step must happen within 30 seconds; otherwise the demo stops with a
// message that says what did not happen, and prints the end of the attacher's
// log. Ctrl-C stops it cleanly at any point.
//
// Environment:
//
//	KUBEBUILDER_ASSETS  directory holding kube-apiserver and etcd (set by `make demo`)
//	DEMO_VERBOSE=1      also echo the attacher's log lines, prefixed with "attacher: "
//	DEMO_KEEP=1         keep the temporary directory (kubeconfig, attacher log) on success
package main
