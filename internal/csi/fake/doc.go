// Package fake is an in-memory CSI driver for tests, the demo and the
// benchmark.
//
// It is a real gRPC server (Identity and Controller services) listening on a
// unix socket, so the code under test talks to it exactly as it would talk to
// a production driver: same client, same interceptors, same error codes.
//
// Volumes exist implicitly: any non-empty volume ID may be published. On top
// of the plain behaviour the driver offers what a test bed needs:
//
//   - fault injection per method and volume, either before the state change
//     (InjectError: nothing happened) or after it (InjectErrorAfter: the volume
//     is attached but the caller sees an error, e.g. a timeout);
//   - latency per method and volume that honours the caller's deadline;
//   - a record of every call (Calls), per-method concurrency peaks
//     (MaxConcurrent) and the current publications (Publications);
//   - out-of-band changes (DetachBehindBack) for reconciliation tests;
//   - Stop/Start on the same socket with all state kept, to simulate a driver
//     restart or a lost connection.
//
// The driver never logs. Secrets are kept in the call record so that tests
// can assert them; whoever prints calls (see Config.OnCall) must leave them out.
package fake
