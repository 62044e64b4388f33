package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFenced is returned by Fence.Wait when the replica stopped while it
// waited for its renewal.
var ErrFenced = errors.New("not starting a CSI call: this replica's Lease renewal is overdue")

// FenceDelay is how long after it sent its last successful renewal the
// leader may still start a CSI call: one retry period (the leader renews
// that often) and half of one for a renewal request that is slow. A
// standby takes over no sooner than the lease duration after it saw that
// renewal, so calls started by the old leader have
// MarginOf(lease, retry) = lease duration − FenceDelay(retry) to end before
// the new leader may start its own (7.5 s at the default 15 s / 5 s).
func FenceDelay(retryPeriod time.Duration) time.Duration {
	return retryPeriod + retryPeriod/2
}

// MarginOf is the time between the last moment an old leader may start a
// CSI call and the first moment a standby may take over: a backend call
// that lasts no longer than this never overlaps a call of the next leader,
// whatever the state of the attachment at the takeover.
func MarginOf(leaseDuration, retryPeriod time.Duration) time.Duration {
	return leaseDuration - FenceDelay(retryPeriod)
}

// Fence decides whether this replica may start a CSI call, from what the
// Lock sees of its Lease. It is safe for concurrent use.
//
// While it leads, the replica may start a call only within FenceDelay of
// sending its last successful renewal: once a renewal is overdue, it may
// have lost the API server, and a standby may be about to take over. Every
// call waits (Wait) until a renewal succeeds again or the replica stops;
// so a leader cut off from the API server stops calling the driver for
// results it cannot record after at most FenceDelay, well before a standby
// can take over and long before client-go gives up leadership.
//
// After an unclean takeover (the Lease expired in another holder's name,
// it was not released), that holder may have died or been cut off in the
// middle of a call, which the backend may still be running. Hold then
// keeps the operations this replica already knew of when it took over
// waiting until FenceDelay plus the call bound (--timeout) have passed
// since this replica saw the old holder's last renewal: the old holder
// started no call after FenceDelay from that renewal, and gave up each call
// at the bound. Operations that showed up after the takeover proceed at
// once: the old holder could not have started a call for them.
type Fence struct {
	retryPeriod, callBound time.Duration
	now                    func() time.Time

	mu       sync.Mutex
	leading  bool
	renewed  time.Time     // when the last successful renewal was sent
	changed  chan struct{} // closed and replaced on every renewal
	takenAt  time.Time     // when this replica took the Lease over uncleanly
	heldTill time.Time     // end of the hold after that takeover
}

// NewFence returns the fence of a replica that renews every retryPeriod
// and bounds each CSI call by callBound (--timeout). It is closed until
// the Lock writes a record naming this replica.
func NewFence(retryPeriod, callBound time.Duration) *Fence {
	return &Fence{retryPeriod: retryPeriod, callBound: callBound, now: time.Now, changed: make(chan struct{})}
}

// renew records a successful acquisition or renewal sent at sent.
func (f *Fence) renew(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leading = true
	if sent.After(f.renewed) {
		f.renewed = sent
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// stop records that this replica no longer leads (it released the Lease,
// or saw another holder): no call may start any more.
func (f *Fence) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leading = false
}

// tookOver records an unclean takeover at at, of a Lease whose previous
// holder this replica saw renewing last at lastSeen.
func (f *Fence) tookOver(at, lastSeen time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.takenAt = at
	f.heldTill = lastSeen.Add(FenceDelay(f.retryPeriod) + f.callBound)
}

// Open returns nil when a call may start now, or an error that says why
// not.
func (f *Fence) Open() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.openLocked()
}

func (f *Fence) openLocked() error {
	if !f.leading {
		return errors.New("not starting a CSI call: this replica does not hold the Lease")
	}
	if since := f.now().Sub(f.renewed); since > FenceDelay(f.retryPeriod) {
		return fmt.Errorf("%w: last renewed %s ago, more than %s", ErrFenced, since.Round(time.Millisecond), FenceDelay(f.retryPeriod))
	}
	return nil
}

// Wait returns nil as soon as a call may start: at once while renewals
// are on time, else after the next successful renewal. It returns an
// error when ctx ends or stop is closed first.
func (f *Fence) Wait(ctx context.Context, stop <-chan struct{}) error {
	for {
		f.mu.Lock()
		err, changed := f.openLocked(), f.changed
		f.mu.Unlock()
		if err == nil {
			return nil
		}
		select {
		case <-changed:
		case <-stop:
			return err
		case <-ctx.Done():
			return err
		}
	}
}

// Hold returns how long a call for an operation this replica first saw at
// seen must still wait after an unclean takeover; 0 when it may start.
// known is false when the moment is not known, which counts as seen before
// the takeover.
func (f *Fence) Hold(seen time.Time, known bool) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	left := f.heldTill.Sub(f.now())
	if left <= 0 || (known && seen.After(f.takenAt)) {
		return 0
	}
	return left
}
