package volumeattachment

import (
	"testing"
	"time"
)

// One operation per VolumeAttachment at a time: a second lock of the same
// name waits for the first to be released, another name does not, and no
// entry outlives its last holder.
func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	unlockA := k.lock("va-a")

	other := make(chan func())
	go func() { other <- k.lock("va-b") }()
	select {
	case unlockB := <-other:
		unlockB()
	case <-time.After(5 * time.Second):
		t.Fatal("another name waited for va-a's lock")
	}

	same := make(chan func())
	go func() { same <- k.lock("va-a") }()
	select {
	case <-same:
		t.Fatal("va-a was locked twice at once")
	case <-time.After(50 * time.Millisecond):
	}
	if got := k.len(); got != 1 {
		t.Fatalf("len = %d while va-a is held and waited for, want 1", got)
	}
	unlockA()
	select {
	case unlock := <-same:
		unlock()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get va-a once it was released")
	}
	if got := k.len(); got != 0 {
		t.Fatalf("len = %d after every lock was released, want 0", got)
	}
}
