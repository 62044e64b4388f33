package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// The probe paths: /healthz for liveness, /readyz for readiness, each
// with /<name> per check.
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
)

// Names of the readiness checks: /readyz/<name> on every server layout
// (the probe server of --health-probe-bind-address, the single server of
// --http-endpoint, and the start-up server that answers while the attacher
// waits for its driver). The runbook and the alerts send operators to
// these paths, so each must answer wherever /readyz does.
const (
	readyzInformers = "informers"
	readyzDriver    = "csi-driver"
	readyzRights    = "rbac"
)

// readyzChecks lists the readiness checks in the order run adds them.
var readyzChecks = []string{readyzInformers, readyzDriver, readyzRights}

// Names of the liveness checks: /healthz/<name>. leader-election is the
// reference's path; it is served with and without leader election, so a
// probe on it works whichever way the flags are set.
const (
	healthzPing           = "ping"
	healthzLeaderElection = "leader-election"
)

// singleServerHandlers returns the health handlers of the single server of
// --http-endpoint (or --metrics-address): the paths of the probe server,
// /healthz, /healthz/<name>, /readyz and /readyz/<name>. Its /readyz says
// which check failed and why, as the reference's manifests read nothing
// else. The readiness checks are looked up when a request comes, because
// run adds them after the Manager (and this server) is built.
func singleServerHandlers(leader healthz.Checker, ready *readiness) map[string]http.Handler {
	return map[string]http.Handler{
		healthzPath:                               healthz.CheckHandler{Checker: leader},
		healthzPath + "/" + healthzPing:           healthz.CheckHandler{Checker: healthz.Ping},
		healthzPath + "/" + healthzLeaderElection: healthz.CheckHandler{Checker: leader},
		readyzPath:                                healthz.CheckHandler{Checker: ready.Check},
		readyzPath + "/":                          http.HandlerFunc(ready.serveNamed),
	}
}

// readiness holds the named readiness checks in the order they were added.
// Each is registered with the Manager (its probe server serves /readyz and
// /readyz/<name>), and Check runs them all for the single server of
// --http-endpoint, whose /readyz says which check failed and why.
type readiness struct {
	names  []string
	checks map[string]healthz.Checker
}

// add registers a check. Call it before the Manager starts.
func (r *readiness) add(mgr manager.Manager, name string, check healthz.Checker) error {
	if r.checks == nil {
		r.checks = map[string]healthz.Checker{}
	}
	r.names = append(r.names, name)
	r.checks[name] = check
	return mgr.AddReadyzCheck(name, check)
}

// serveNamed serves /readyz/<name>: that check alone, with its reason when
// it fails, or 404 for a name that is no check.
func (r *readiness) serveNamed(w http.ResponseWriter, req *http.Request) {
	check, ok := r.checks[strings.TrimPrefix(req.URL.Path, readyzPath+"/")]
	if !ok {
		http.NotFound(w, req)
		return
	}
	healthz.CheckHandler{Checker: check}.ServeHTTP(w, req)
}

// Check fails with the first failing check, named.
func (r *readiness) Check(req *http.Request) error {
	for _, name := range r.names {
		if err := r.checks[name](req); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// watchRights reviews the attacher's API rights now, before leader
// election can wait forever on a Lease it may not take, logs any missing
// one with the Role or ClusterRole that grants it, and keeps /readyz false
// while a required one is missing (rights.Monitor). A shipped role that
// does not parse is returned: the attacher cannot tell what it needs.
func watchRights(ctx context.Context, mgr manager.Manager, ready *readiness, opts *options.Options, driverName string) error {
	logger := logr.FromContextOrDiscard(ctx)
	required, err := rights.RequiredRights(opts.LeaderElection, opts.LeaderElectionNamespaceResolved, leader.LeaseName(driverName))
	if err != nil {
		return err
	}
	m := &rights.Monitor{
		Review:         rights.ClientReviewer(mgr.GetClient()),
		Rights:         required,
		LeaderElection: opts.LeaderElection,
		Log:            logger.WithName("rights"),
	}
	m.ReviewOnce(ctx)
	if err := mgr.Add(m); err != nil {
		return err
	}
	return ready.add(mgr, readyzRights, m.Check)
}

// watchOtherLeader runs, on a replica without leader election, the
// leader-election check the doctor prints too, every 30 s: another attacher of the same
// driver that holds and renews the driver's Lease attaches and detaches
// the same volumes as this one, and is logged at error level
// (leader.LeaderlessMonitor). The Lease is read directly, not cached: a
// watch would need list and watch on Leases, which a replica without
// leader election may not have.
func watchOtherLeader(ctx context.Context, mgr manager.Manager, opts *options.Options, driverName string) error {
	ref := leader.LeaseRef{Driver: driverName, Namespace: opts.LeaderElectionNamespaceResolved, Name: leader.LeaseName(driverName)}
	reader := mgr.GetAPIReader()
	m := &leader.LeaderlessMonitor{
		Lease: ref,
		Get: func(ctx context.Context) (*coordinationv1.Lease, error) {
			lease := &coordinationv1.Lease{}
			err := reader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, lease)
			return lease, err
		},
		Log: logr.FromContextOrDiscard(ctx).WithName("leader-election"),
	}
	return mgr.Add(m)
}

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
var startupHealthzPaths = []string{healthzPath, healthzPath + "/" + healthzPing, healthzPath + "/" + healthzLeaderElection}

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
	mux.HandleFunc(readyzPath, notReady)
	for _, name := range readyzChecks {
		if name == readyzDriver {
			mux.HandleFunc(readyzPath+"/"+name, notReady)
			continue
		}
		mux.HandleFunc(readyzPath+"/"+name, func(w http.ResponseWriter, _ *http.Request) {
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
