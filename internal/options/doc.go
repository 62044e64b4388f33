// Package options turns the command line and the environment into a validated
// Options value, and builds the process logger from it.
//
// The flag names are those of the reference attacher
// (kubernetes-csi/external-attacher, including the csi-lib-utils standard
// flags and the component-base logging flags), so that its manifests keep
// working when this attacher is swapped in. Some defaults differ on purpose;
// they are the product defaults documented in the design notes:
//
//   - --csi-address has no default and is required.
//   - --timeout is 1m and --retry-interval-max is 30s, so slow drivers are not
//     cut off mid-call and a failed attach is retried within seconds.
//   - --worker-threads is 1000 per lane (a reconcile holds its worker for the
//     CSI call, so slow backends need many), --max-inflight is 2000 and
//     adapts to a throttling driver, and --kube-api-qps/--kube-api-burst are
//     "auto" (1000/2000): a cluster with thousands of volumes must never wait
//     on the attacher's own limits. The API server protects itself with API Priority
//     and Fairness, which is the right place for that decision.
//   - --leader-election is on, because the attacher normally runs as a
//     replicated sidecar and two active leaders would race on the same objects.
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
