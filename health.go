package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/csi-attacher/csi-attacher/internal/doctor"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/rights"
	"github.com/csi-attacher/csi-attacher/internal/volume"
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
		"/healthz":                          healthz.CheckHandler{Checker: leader},
		"/healthz/" + healthzPing:           healthz.CheckHandler{Checker: healthz.Ping},
		"/healthz/" + healthzLeaderElection: healthz.CheckHandler{Checker: leader},
		"/readyz":                           healthz.CheckHandler{Checker: ready.Check},
		"/readyz/":                          http.HandlerFunc(ready.serveNamed),
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
	check, ok := r.checks[strings.TrimPrefix(req.URL.Path, "/readyz/")]
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
	required, err := rights.RequiredRights(opts.LeaderElection, opts.LeaderElectionNamespaceResolved, volume.LeaseName(driverName))
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
// doctor's leader-election check every 30 s: another attacher of the same
// driver that holds and renews the driver's Lease attaches and detaches
// the same volumes as this one, and is logged at error level
// (doctor.LeaderlessMonitor). The Lease is read directly, not cached: a
// watch would need list and watch on Leases, which a replica without
// leader election may not have.
func watchOtherLeader(ctx context.Context, mgr manager.Manager, opts *options.Options, driverName string) error {
	ref := doctor.LeaseRef{Driver: driverName, Namespace: opts.LeaderElectionNamespaceResolved, Name: volume.LeaseName(driverName)}
	reader := mgr.GetAPIReader()
	m := &doctor.LeaderlessMonitor{
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
