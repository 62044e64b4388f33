// Package leaderhealth gives /healthz/leader-election the reference
// attacher's meaning: it fails once this replica leads but has not renewed
// its Lease for longer than the lease duration plus a grace period (client-go's
// leaderelection.HealthzAdaptor, which the reference uses with 20 s). A
// leader in that state is wedged: client-go gives up leadership after the
// renew deadline and the process exits, so a leader that neither renews
// nor exits has stopped making progress, and the kubelet's liveness probe
// should restart it.
//
// controller-runtime builds its LeaderElector inside the Manager and does
// not expose it, so the check cannot ask the elector. Instead Lock wraps the
// Lease lock the Manager is given (manager.Options.
// LeaderElectionResourceLockInterface) and watches what the elector does
// with it: a successful write of a record naming this replica is a renewal,
// a record naming another holder (or none, after a release) means it does
// not lead.
package leaderhealth
