package controllers

import "testing"

func TestForceSync(t *testing.T) {
	f := newForceSync()
	if f.consume("uid-a") {
		t.Fatal("consume of an unmarked object reported true")
	}
	f.mark("uid-a")
	f.mark("uid-a")
	f.mark("uid-b")
	if f.len() != 2 {
		t.Fatalf("len = %d, want 2", f.len())
	}
	if !f.consume("uid-a") {
		t.Fatal("consume of a marked object reported false")
	}
	if f.consume("uid-a") {
		t.Fatal("a mark must be used once, however often it was set")
	}
	if !f.consume("uid-b") {
		t.Fatal("marks of different objects are independent")
	}
	if f.len() != 0 {
		t.Fatalf("len = %d after every mark was used, want 0", f.len())
	}
	var none *forceSync
	none.mark("uid-a")
	if none.consume("uid-a") || none.len() != 0 {
		t.Fatal("a nil forceSync never forces")
	}
}
