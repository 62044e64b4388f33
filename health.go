package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/csi-attacher/csi-attacher/internal/doctor"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/volume"
)

// Names of the readiness checks: /readyz/<name> on the probe server.
const (
	readyzInformers = "informers"
	readyzDriver    = "csi-driver"
	readyzRights    = "rbac"
)

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
// while a required one is missing (doctor.RightsMonitor).
func watchRights(ctx context.Context, mgr manager.Manager, ready *readiness, opts *options.Options, driverName string) error {
	logger := logr.FromContextOrDiscard(ctx)
	m := &doctor.RightsMonitor{
		Review:         doctor.ClientReviewer(mgr.GetClient()),
		Rights:         doctor.RequiredRights(opts.LeaderElection, opts.LeaderElectionNamespaceResolved, volume.LeaseName(driverName)),
		LeaderElection: opts.LeaderElection,
		Log:            logger.WithName("rights"),
	}
	m.ReviewOnce(ctx)
	if err := mgr.Add(m); err != nil {
		return err
	}
	return ready.add(mgr, readyzRights, m.Check)
}
