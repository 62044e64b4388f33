package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// startupProbes answers the kubelet's probes while run waits for the driver,
// before the Manager (and its probe server) exists: /healthz is ok, the
// process is alive and waiting; /readyz fails with the reason the last Probe
// gave, such as a socket whose permissions keep the attacher out. Without it
// the kubelet would find nothing listening, call the container dead and
// restart it, and nobody could read why it is waiting.
type startupProbes struct {
	srv    *http.Server
	done   chan struct{}
	reason atomic.Pointer[string]
}

// startupHealthzPaths succeed while waiting; the Manager's servers serve
// the same paths afterwards.
var startupHealthzPaths = []string{"/healthz", "/healthz/" + healthzPing, "/healthz/" + healthzLeaderElection}

// serveStartupProbes listens on addr ("" or "0": nothing to serve) until
// Stop. csiAddress is quoted until the first Probe has failed.
func serveStartupProbes(addr, csiAddress string, log logr.Logger) (*startupProbes, error) {
	p := &startupProbes{done: make(chan struct{})}
	initial := fmt.Sprintf("waiting for the CSI driver at %s to answer Probe", csiAddress)
	p.reason.Store(&initial)
	if addr == "" || addr == "0" {
		close(p.done)
		return p, nil
	}
	mux := http.NewServeMux()
	for _, path := range startupHealthzPaths {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") })
	}
	// /readyz and every /readyz/<check> fail until the driver answers:
	// the checks other than the driver's run only after it.
	notReady := func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, readyzDriver+": "+*p.reason.Load(), http.StatusServiceUnavailable)
	}
	mux.HandleFunc("/readyz", notReady)
	for _, name := range readyzChecks {
		if name == readyzDriver {
			mux.HandleFunc("/readyz/"+name, notReady)
			continue
		}
		mux.HandleFunc("/readyz/"+name, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, name+": not checked yet, the attacher waits for its CSI driver: "+*p.reason.Load(), http.StatusServiceUnavailable)
		})
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s for the health probes: %w", addr, err)
	}
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Start-up health probe server stopped", "address", addr)
		}
	}()
	return p, nil
}

// Waiting records why the driver is not ready yet (csi.Options.Waiting).
func (p *startupProbes) Waiting(reason error) {
	s := reason.Error()
	p.reason.Store(&s)
}

// Stop closes the listener, so that the Manager can bind the same address.
func (p *startupProbes) Stop() {
	if p.srv != nil {
		_ = p.srv.Close()
	}
	<-p.done
}
