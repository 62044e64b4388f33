// Package leader provides the leader-election lock of the attacher: the
// Lease lock of client-go, wrapped so that a standby takes over the moment
// the leader releases the Lease instead of at its next retry.
//
// client-go's elector tries to acquire the Lease every --leader-election-
// retry-period, jittered to between 1 and 2.2 times that period (5-11 s with
// the default 5 s). A leader that releases the Lease on SIGTERM thus leaves
// the attacher without a leader for up to 11 s, during a rolling update of
// every replica. A shorter retry period would shorten that, but it is also
// the leader's renew interval: every replica's leader would write its Lease
// several times a second, forever, to save a few seconds once per rollout.
//
// Instead each replica watches its Lease, and a standby's read of the Lease
// waits while the holder keeps renewing it. A release ends the wait, and the
// elector's attempt finds the Lease free and takes it at once: the hand-over
// takes one watch event and one write, whatever the retry period. A standby
// makes no requests at all while a healthy leader renews; a holder that
// stops renewing ends the wait too, and client-go's expiry applies as usual.
package leader
