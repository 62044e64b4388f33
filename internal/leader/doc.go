// Package leader provides the leader election of the attacher: the name of
// the driver's Lease (LeaseName, the reference attacher's), and the Lease
// lock of client-go, wrapped so that a standby takes over the moment
// the leader releases the Lease, or exactly one lease duration after the
// leader's last renewal, and a Fence that keeps an old leader from calling
// the driver once it may be replaced.
//
// Hand-over. client-go's elector tries to acquire the Lease every
// --leader-election-retry-period, jittered to between 1 and 2.2 times that
// period (5-11 s with the default 5 s). A leader that releases the Lease on
// SIGTERM would leave the attacher without a leader for up to 11 s. A
// shorter retry period would shorten that, but it is also the leader's
// renew interval. Instead each replica watches its Lease, and a standby's
// read of the Lease waits while the holder keeps renewing it. A release ends
// the wait, and the elector's attempt finds the Lease free and takes it at
// once. A standby makes no requests at all while a healthy leader renews.
//
// Expiry. A holder that stops renewing (it crashed, or lost the API
// server) is replaced one lease duration after this process last saw it
// renew, measured on this process's clock as client-go does, but from the
// watch's sighting rather than from the elector's next poll (see Lock.Get).
// Without list and watch on Leases (Options.NoWatch) every read is a
// plain GET and the timing is client-go's own.
//
// Fencing. The leader may start a CSI call only within FenceDelay (1.5
// retry periods) of sending its last successful renewal; a standby takes
// over no sooner than a lease duration after it saw that renewal. After an
// unclean takeover (the Lease expired, it was not released) the new leader
// holds the operations it already knew of until the old holder's calls
// have reached their bound (see Fence).
//
// Without leader election. A replica run without --leader-election takes
// no Lease, so it would not see another attacher of its driver that does:
// LeaderlessMonitor reads the driver's Lease and logs, at error level,
// another holder that renews it (CheckOtherLeader, whose verdict the
// doctor prints too).
//
// Health. Lock.Check is /healthz/leader-election: it fails once this
// replica leads but has not renewed the Lease for longer than the lease
// duration plus a grace period, as the reference's does (see health.go).
package leader
