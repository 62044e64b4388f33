// Command bench measures csi-attacher at scale; `make bench` runs it.
//
// It needs nothing but the envtest binaries (kube-apiserver and etcd, found
// through KUBEBUILDER_ASSETS, which `make bench` sets) and a Go toolchain.
// It runs everything on this machine:
//
//   - a control plane started with controller-runtime's envtest, with room
//     for a burst of requests (--max-requests-inflight=3000,
//     --max-mutating-requests-inflight=1000) and without the
//     StorageObjectInUseProtection admission plugin: there is no
//     kube-controller-manager to remove the kubernetes.io/pv-protection
//     finalizer, so with it no PersistentVolume could ever be deleted;
//   - the fake CSI driver (internal/csi/fake) in this process, with a
//     configurable latency per ControllerPublishVolume and
//     ControllerUnpublishVolume (default 0);
//   - the attacher, built from this repository (go build) and run as a
//     subprocess as a user would run it: default flags plus --csi-address,
//     --kubeconfig, --metrics-addr and --health-probe-bind-address on
//     127.0.0.1, plus whatever follows `--` on the command line (later flags
//     win, so those may override ours too).
//
// The phases, each timed:
//
//  1. start the control plane (in parallel with building the attacher);
//  2. create a CSINode, N PersistentVolumes of the driver and, with
//     -other-driver-objects=M, M PersistentVolumes and M VolumeAttachments of
//     another driver (a busy cluster, for the memory figures);
//  3. start the attacher and wait for its /readyz, for its leader-election
//     Lease (when --leader-election is passed) and for its
//     controllers to start their workers (the "Starting workers" log line);
//  4. attach: create N VolumeAttachments at once (50 concurrent requests)
//     and wait until all are attached;
//  5. detach: delete them all and wait until they are gone;
//  6. release: delete the N PersistentVolumes and wait until they are gone.
//
// The objects are observed through informers (one LIST and one WATCH per
// resource), not by polling. The attach latency of a VolumeAttachment is the
// time from just before its create request to the event that shows
// status.attached=true, both on this process's clock; a phase ends at its
// last such event.
//
// Around phases 4-6 (and 2 s after each, for writes that trail the last
// event) the benchmark scrapes the kube-apiserver's own /metrics and takes
// the deltas of apiserver_request_total by verb, resource and subresource.
// The benchmark's own requests (it only creates and deletes) are counted and
// subtracted; Lease writes (leader election, API server heartbeats) are
// reported apart, as background. What remains are the attacher's writes,
// given per attach, per detach and per PV release, including failed ones
// (e.g. a conflict or a NotFound status patch), which are also counted apart.
// Reads (GET, LIST, WATCH; a WATCH is counted when it ends) are given per
// phase; the benchmark's informers started earlier and rarely add to them.
// Watchers that the API server closed because they did not keep up with the
// events (apiserver_terminated_watchers_total; the attacher's or the
// benchmark's) are reported as a warning.
//
// The driver counts the CSI calls by method and the duplicates: a
// ControllerPublishVolume for a (volume, node) pair that is already published,
// or a ControllerUnpublishVolume for a pair that is not published. The
// attacher's peak RSS is its VmHWM (sampled every 200 ms) or its rusage after
// exit, whichever is larger; its CPU time is utime+stime, per phase from
// /proc and in total after exit. The CPU of the phases is also given per 1000
// volumes, each phase's and the three together: on a shared machine the
// phases' wall time follows the API server, the attacher's CPU seconds do
// not. They still vary with the machine's load (a busier machine costs the
// same work more CPU), so the attacher's heap allocations per 1000 volumes,
// from its go_memstats_* metrics, are given too: they follow its work
// only. At the end the attacher gets SIGTERM and 30 s to exit.
//
// The run checks two guarantees and, unless -check=false, fails when one
// does not hold: the attacher's writes per operation stay at the floor of 3
// per attach, 1 per detach and 1 per release (failed writes count), and no
// CSI call is a duplicate.
//
// With -cpuprofile or -allocprofile, the attacher runs with
// --pprof-bind-address on 127.0.0.1 (unless the attacher flags give one).
// Its CPU profile of the three phases is taken through /debug/pprof/profile,
// in back-to-back pieces of a second merged with `go tool pprof -proto`; its
// allocation profile is /debug/pprof/allocs at the end less the same at the
// start (`go tool pprof -base`).
//
// While it waits, the benchmark prints a progress line every 2 s
// ("attach: 734/1000 attached, 12.1 s"). At the end it prints a table and one
// line "BENCH_JSON {...}" with every figure, for scripts. If a phase does not
// finish within -timeout (counted from the start), or the attacher exits, it
// fails with exit status 1 and prints the last 30 lines of the attacher's log
// and the log's path.
//
// Usage:
//
//	make bench                                  # N=1000, default flags
//	make bench N=5000
//	make bench BENCH_ARGS=--csi-latency=1s
//	make bench BENCH_ARGS='-cpuprofile /tmp/attacher-cpu.pb.gz'
//	make bench BENCH_ARGS='-n 5000 -other-driver-objects 5000 -v'
//	make bench BENCH_ARGS='-n 1000 -- --worker-threads=10 --kube-api-qps=5 --kube-api-burst=10'
//	KUBEBUILDER_ASSETS=$(hack/install-envtest.sh) go run ./hack/bench -n 50
//
// Flags:
//
//	-n N                     volumes (default 1000, or $N when -n is not given)
//	-publish-latency D       latency of every ControllerPublishVolume (default 0)
//	-unpublish-latency D     latency of every ControllerUnpublishVolume (default 0)
//	-csi-latency D           both latencies at once (the two flags above win)
//	-check                   fail when the write floor or zero duplicates do not hold (default true)
//	-cpuprofile PATH         write the attacher's CPU profile of the three phases to PATH
//	-allocprofile PATH       write the attacher's allocation profile of the three phases to PATH
//	-other-driver-objects M  PVs and VAs of another driver created beforehand (default 0)
//	-timeout D               for the whole run (default 10m)
//	-settle D                wait after each phase before scraping /metrics (default 2s)
//	-json PATH               also write the JSON report to PATH
//	-v                       print the API requests per phase by verb/resource/subresource
//	-keep                    keep the temporary directory (kubeconfig, attacher log)
//	-- ARGS                  extra flags for the attacher
package main
