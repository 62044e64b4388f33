// Package testbed holds what the programs under hack/ (demo, bench, soak)
// and the e2e suite under test/e2e share to run the attacher against a
// local control plane: finding the repository, the envtest binaries, free
// ports and a short temporary directory; starting the control plane and
// writing a kubeconfig for it; building the attacher and running it as a
// subprocess; the objects it works on; and reading the tail of its log.
//
// Its subpackage cluster adds, for the e2e suite and the cluster
// benchmark, the rest of a cluster around the control plane:
// kube-controller-manager, kube-scheduler and kwok's nodes, with the fake
// driver and the attacher each a process of its own.
package testbed
