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
// # Side by side with the reference
//
// With -reference-binary and without -scale (`make bench-compare`), the
// phases above run for our attacher and then for the reference
// (kubernetes-csi/external-attacher, built by
// hack/install-reference-attacher.sh), each in a fresh control plane with
// the same objects and the same driver; -rounds K repeats the pair. The
// reference runs with --worker-threads=100 --kube-api-qps=1000
// --kube-api-burst=1000 (or -reference-args) and --http-endpoint for its
// /metrics; it logs no line when its workers start, so the benchmark waits
// for its "Starting CSI attacher" line. Both binaries are then let go idle
// (less than 0.05 s of CPU in 2 s), so that neither's start-up work is
// counted in the attach phase. The report gives one column per run: the
// phases' times, CPU per 1000 volumes per phase and for the three, writes
// per operation, failed writes, duplicate CSI calls, latency p50 and p99,
// heap allocated, peak RSS; then our CPU per 1000 volumes over the
// reference's (each the mean of its runs), per phase and in total. The
// checks apply to our runs only: the reference writes twice per detach and
// repeats ControllerPublishVolume calls, which is reported, not checked.
// -cpuprofile and -allocprofile profile our runs only.
//
// # The scale benchmark
//
// With -scale N (`make bench-scale`, N=20000 by default; BENCH_SCALE=100000
// for the larger size) the benchmark measures an attacher started in a
// cluster that already holds N attached VolumeAttachments of its driver, as
// after a failover or an upgrade. It runs our attacher and, with
// -reference-binary, the reference (kubernetes-csi/external-attacher, which
// hack/install-reference-attacher.sh builds at a pinned version into the
// tools cache), one after the other in one run, each in a fresh control
// plane with the same objects, and prints them side by side (-rounds K
// repeats the pair). Before each binary starts there are:
//
//   - -scale-nodes CSINodes (500), each with the driver's node ID and the
//     other driver's;
//   - N VolumeAttachments spread round robin over those nodes, each as an
//     attacher leaves it: the finalizer external-attacher/<driver>, the
//     annotation csi.alpha.kubernetes.io/node-id, status.attached=true with
//     the fake driver's devicePath; their PersistentVolumes with the same
//     finalizer; and the fake driver holding each volume published on its
//     node;
//   - -scale-pending VolumeAttachments (100) without status, created one
//     by one, oldest first, with their PVs;
//   - -other-driver-objects attached PVs and VolumeAttachments of another
//     driver (N/10 unless given).
//
// The attacher then starts (time 0), and -scale-new VolumeAttachments (100)
// are created at once. The run reports, from time 0: when the first and the
// last new one were attached, when the oldest pending one and the last
// pending one were; when the attacher went idle (less than 0.05 s of CPU
// in 2 s: the end of its pass over the existing objects; watched from when
// the new and pending work is served, so never earlier than that) and its
// CPU until then; its API writes until then (access reviews apart) and how many go
// beyond the floor of 3 per new and pending attach; how many existing
// objects were modified (a watch from time 0 counts MODIFIED events); the
// CSI calls by kind of volume (existing, pending, new). Then -scale-detach
// existing VolumeAttachments (1000) are deleted at once: the time until all
// are gone, the writes per detach and the CPU. Peak RSS and CPU are the
// whole run's. Our attacher runs with its defaults plus the flags after
// `--`; the reference with --worker-threads=100 --kube-api-qps=1000
// --kube-api-burst=1000 (its leader election is off by default), or
// -reference-args. -cpuprofile profiles our attacher from its start until
// idle: the pass over the existing objects. With -check (the default) the
// run fails when our attacher modifies an existing object, publishes an
// existing volume again, writes more than once per detach or repeats a CSI
// call; the reference's figures are reported only.
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
//	make bench-compare                          # N=1000, ours and the reference side by side
//	make bench-compare BENCH_ARGS='-rounds 2'
//	make bench-scale                            # 20 000 attached, ours and the reference
//	make bench-scale BENCH_SCALE=100000 BENCH_ARGS='-rounds 2'
//	make bench-scale BENCH_ARGS='-cpuprofile /tmp/attacher-start.pb.gz'
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
//	-timeout D               for the whole run, with -scale for each binary's run (default 10m)
//	-settle D                wait after each phase before scraping /metrics (default 2s)
//	-json PATH               also write the JSON report to PATH
//	-v                       print the API requests per phase by verb/resource/subresource
//	-keep                    keep the temporary directory (kubeconfig, attacher log)
//	-scale N                 run the scale benchmark with N attached VolumeAttachments
//	-scale-new K             new VolumeAttachments right after the start (default 100)
//	-scale-pending P         pending VolumeAttachments before the start (default 100)
//	-scale-detach D          existing VolumeAttachments deleted at once (default 1000)
//	-scale-nodes M           nodes they are spread over (default 500)
//	-reference-binary PATH   also run this attacher, the reference, after ours (throughput or -scale)
//	-reference-args "ARGS"   the reference's flags instead of the defaults above
//	-rounds R                run each binary R times, alternating (default 1)
//	-- ARGS                  extra flags for the attacher
package main
