package controllers

import "testing"

func TestForceSync(t *testing.T) {
	f := newForceSync()
	if f.consume("a") {
		t.Fatal("consume of an unmarked name reported true")
	}
	f.mark("a")
	f.mark("a")
	f.mark("b")
	if !f.consume("a") {
		t.Fatal("consume of a marked name reported false")
	}
	if f.consume("a") {
		t.Fatal("a mark must be used once, however often it was set")
	}
	if !f.consume("b") {
		t.Fatal("marks of different names are independent")
	}
	var none *forceSync
	none.mark("a")
	if none.consume("a") {
		t.Fatal("a nil forceSync never forces")
	}
}
