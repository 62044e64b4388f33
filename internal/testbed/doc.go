// Package testbed holds what the programs under hack/ (demo, bench, soak)
// and the e2e suite under test/e2e share to run the attacher against a
// local control plane: finding the repository, the envtest binaries, free
// ports and a short temporary directory; starting the control plane and
// writing a kubeconfig for it; building the attacher and running it as a
// subprocess; the objects it works on; and reading the tail of its log.
package testbed
