// Package testbed holds what the programs under hack/ (demo, bench, soak)
// share to run the attacher against a local control plane: finding the
// repository, the envtest binaries and free ports, and reading the tail of
// a log.
package testbed
