// Package options turns the command line and the environment into a validated
// Options value, and builds the process logger from it.
//
// The flag names are those of the reference attacher
// (kubernetes-csi/external-attacher, including the csi-lib-utils standard
// flags and the component-base logging flags), so that its manifests keep
// working when this attacher is swapped in. The defaults that decide what a
// Pod does are the reference's too, so that swapping the image in a working
// driver Pod changes nothing but how volumes are attached:
//
//   - no listener unless one is asked for (--http-endpoint, --metrics-address,
//     --metrics-addr, --health-probe-bind-address): the containers of a Pod
//     share one network namespace, and a port taken unasked (8080 is many
//     sidecars' metrics port) would make the attacher or its neighbour exit;
//   - --leader-election off: a single replica that runs without it and
//     without the Lease Role keeps attaching;
//   - --timeout 15s: a call in flight at SIGTERM ends, its result is written
//     and the Lease released within a Pod's default 30 s grace period.
//
// The other differences are on purpose; they are the product defaults of the
// design notes and each is listed with its reason in the README ("Migrating"):
//
//   - --csi-address has no default and is required.
//   - --retry-interval-max is 30s, so a failed attach is retried within
//     seconds once its cause is fixed.
//   - --worker-threads is 1000 per lane (a reconcile holds its worker for the
//     CSI call, so slow backends need many), --max-inflight is 2000 and
//     adapts to a throttling driver, and --kube-api-qps/--kube-api-burst are
//     "auto" (1000/2000): a cluster with thousands of volumes must never wait
//     on the attacher's own limits. The API server protects itself with API Priority
//     and Fairness, which is the right place for that decision.
//   - --v is 5, the level that logs per-volume decisions.
//
// Everything that can be checked without talking to a server is checked by
// Parse, and every error names the flag or environment variable at fault, so a
// bad manifest fails at start with a message that says what to fix instead of
// failing later in a controller.
//
// Parse takes the environment and the file system as functions so that tests
// can run in parallel without touching process state.
package options
