// Command soak runs csi-attacher through many attach/detach cycles with
// faults injected at random, then checks that nothing leaked; `make soak`
// runs it (SOAK_ARGS passes flags). It is not part of `make test`.
//
// Like hack/bench it needs only the envtest binaries (KUBEBUILDER_ASSETS,
// set by `make soak`) and a Go toolchain. It starts kube-apiserver and etcd
// with envtest, serves the fake CSI driver (internal/csi/fake) in this
// process, builds the attacher from this repository and runs it as a
// subprocess with short timings (--timeout=2s, --retry-interval-start=100ms,
// --retry-interval-max=2s, --leader-election=false).
//
// For -duration, every one of -n volume slots loops: create a
// VolumeAttachment for its PersistentVolume, wait until it is attached (or,
// one time in five, delete it at once, mid-attach), delete it, wait until it
// is gone. Meanwhile faults are injected into the driver: errors of every
// gRPC code 1..16 before or after the call takes effect (for 1 to 3 calls of
// a random volume's Publish or Unpublish), latency spikes of up to 3 s, and
// a driver restart (Stop, 1 s down, Start on the same socket) every
// -restart-every.
//
// Then the faults are cleared, the even slots keep one live VolumeAttachment
// and the odd slots none, and after convergence it counts:
//
//   - leaked publications: driver publications without a live attached VA;
//   - status mismatches: live VAs whose status.attached disagrees with the
//     driver;
//   - unconverged: live VAs not attached after -converge;
//   - stuck finalizers: VAs, and then (after every VA is deleted) PVs,
//     deleted but not gone after 60 s.
//
// It prints the counts and exits 1 if any of the last four is non-zero.
//
// Flags: -duration (3m), -n (200), -restart-every (30s), -fault-interval
// (100ms between injections), -converge (2m), -seed, -keep (keep the
// temporary directory with the attacher log).
//
// With -churn=N it runs a memory check instead of the fault soak: N
// fault-free cycles on -n slots in parallel, each creating a new
// PersistentVolume and VolumeAttachment, waiting until it is attached,
// deleting the VolumeAttachment, then the PersistentVolume, and waiting
// until both are gone. Every -sample (10s) it prints the attacher's RSS
// (total and anonymous) and the size of each of its per-object maps, read
// from csi_attacher_tracked_objects. It exits 1 unless, once idle, every map
// is empty and the anonymous RSS has grown by at most -rss-slack MiB (16)
// since the warm-up (the first fifth of the cycles):
//
//	make soak SOAK_ARGS="-churn=100000 -n=50"
package main
