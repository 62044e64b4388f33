// Command fakedriver serves the fake CSI driver (internal/csi/fake) on a
// unix socket, for the demo and the benchmark.
//
// Every call is logged to stderr as one line, without secrets. SIGTERM or
// SIGINT stops the server and removes the socket.
package main
