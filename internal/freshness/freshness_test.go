package freshness

import (
	"strconv"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
)

const uid = types.UID("0b9e4a1c-uid-1")

func TestNewIsEmpty(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	g.Expect(tr.Len()).To(Equal(0))
	g.Expect(tr.Stale(uid, "1")).To(BeFalse(), "nothing written: never stale")
	g.Expect(tr.Stale(uid, "")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
}

func TestStale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		written []string // resourceVersions passed to Wrote, in order
		cached  string
		stale   bool
		lenLeft int // entries left after the Stale call
	}{
		{name: "much older, numerically not lexically", written: []string{"100"}, cached: "99", stale: true, lenLeft: 1},
		{name: "lexically greater but numerically older", written: []string{"10"}, cached: "9", stale: true, lenLeft: 1},
		{name: "cached equal to written: fresh, dropped", written: []string{"10"}, cached: "10", stale: false, lenLeft: 0},
		{name: "cached newer: fresh, dropped", written: []string{"10"}, cached: "11", stale: false, lenLeft: 0},
		{name: "numerically newer but lexically smaller", written: []string{"9"}, cached: "10", stale: false, lenLeft: 0},
		{name: "non-numeric cached version is fresh and drops the entry", written: []string{"10"}, cached: "abc", stale: false, lenLeft: 0},
		{name: "empty cached version is fresh", written: []string{"10"}, cached: "", stale: false, lenLeft: 0},
		{name: "negative cached version is not a number", written: []string{"10"}, cached: "-1", stale: false, lenLeft: 0},
		{name: "non-numeric written version is ignored", written: []string{"abc"}, cached: "1", stale: false, lenLeft: 0},
		{name: "empty written version is ignored", written: []string{""}, cached: "1", stale: false, lenLeft: 0},
		{name: "overflowing written version is ignored", written: []string{"18446744073709551616"}, cached: "1", stale: false, lenLeft: 0},
		{name: "max uint64 is a number", written: []string{"18446744073709551615"}, cached: "18446744073709551614", stale: true, lenLeft: 1},
		{name: "highest write wins over a later lower one", written: []string{"20", "10"}, cached: "15", stale: true, lenLeft: 1},
		{name: "highest write wins over an earlier lower one", written: []string{"10", "20"}, cached: "15", stale: true, lenLeft: 1},
		{name: "garbage write does not lower the recorded one", written: []string{"20", "x"}, cached: "19", stale: true, lenLeft: 1},
		{name: "cached catching up with the highest write", written: []string{"10", "20"}, cached: "20", stale: false, lenLeft: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			tr := New()
			for _, rv := range tt.written {
				tr.Wrote(uid, rv)
			}
			g.Expect(tr.Stale(uid, tt.cached)).To(Equal(tt.stale))
			g.Expect(tr.Len()).To(Equal(tt.lenLeft))
		})
	}
}

func TestStaleUntilCacheCatchesUp(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote(uid, "42")
	g.Expect(tr.Len()).To(Equal(1))

	// Asking repeatedly with the old copy stays stale and keeps the entry.
	for range 3 {
		g.Expect(tr.Stale(uid, "41")).To(BeTrue())
		g.Expect(tr.Len()).To(Equal(1))
	}
	// The cache catches up: fresh, and the entry is forgotten ...
	g.Expect(tr.Stale(uid, "42")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
	// ... so even an older copy seen afterwards is no longer stale.
	g.Expect(tr.Stale(uid, "41")).To(BeFalse())
}

func TestWroteLowerAfterDrop(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote(uid, "20")
	g.Expect(tr.Stale(uid, "20")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
	// Once dropped, a new write is recorded afresh.
	tr.Wrote(uid, "21")
	g.Expect(tr.Stale(uid, "20")).To(BeTrue())
}

func TestEmptyUIDIgnored(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote("", "10")
	g.Expect(tr.Len()).To(Equal(0))
	g.Expect(tr.Stale("", "1")).To(BeFalse())
}

func TestZeroVersionIsNeverStale(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	// No cached copy can be older than revision 0, so recording it is moot.
	tr.Wrote(uid, "0")
	g.Expect(tr.Stale(uid, "0")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
}

func TestObjectsAreIndependent(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote("a", "10")
	tr.Wrote("b", "20")
	g.Expect(tr.Len()).To(Equal(2))

	g.Expect(tr.Stale("a", "15")).To(BeFalse(), "a's cache caught up")
	g.Expect(tr.Stale("b", "15")).To(BeTrue(), "b's write is still ahead")
	g.Expect(tr.Stale("c", "1")).To(BeFalse(), "c was never written")
	g.Expect(tr.Len()).To(Equal(1))
}

func TestForget(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote("a", "10")
	tr.Wrote("b", "10")
	tr.Forget("a")
	g.Expect(tr.Len()).To(Equal(1))
	g.Expect(tr.Stale("a", "1")).To(BeFalse())
	g.Expect(tr.Stale("b", "1")).To(BeTrue())

	tr.Forget("never-written") // no-op
	tr.Forget("")
	g.Expect(tr.Len()).To(Equal(1))
	tr.Forget("b")
	g.Expect(tr.Len()).To(Equal(0))
}

// TestConcurrent is meant for -race: writers, readers and forgetters on
// shared and private uids.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	const workers, rounds = 8, 500

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := types.UID("own-" + strconv.Itoa(w))
			for i := 1; i <= rounds; i++ {
				rv := strconv.Itoa(i)
				tr.Wrote("shared", rv)
				tr.Wrote(own, rv)
				_ = tr.Stale("shared", strconv.Itoa(i-1))
				_ = tr.Len()
				if i%50 == 0 {
					tr.Forget("shared")
				}
			}
		})
	}
	wg.Wait()

	// Each private uid has its highest write, rounds, recorded.
	for w := range workers {
		own := types.UID("own-" + strconv.Itoa(w))
		g.Expect(tr.Stale(own, strconv.Itoa(rounds-1))).To(BeTrue(), "uid %s", own)
		g.Expect(tr.Stale(own, strconv.Itoa(rounds))).To(BeFalse(), "uid %s", own)
	}
	tr.Forget("shared")
	g.Expect(tr.Len()).To(Equal(0))
}

// TestConcurrentHighestWins checks that racing writes of different versions
// for one uid leave the highest one recorded.
func TestConcurrentHighestWins(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	var wg sync.WaitGroup
	for i := 1; i <= 100; i++ {
		wg.Go(func() { tr.Wrote(uid, strconv.Itoa(i)) })
	}
	wg.Wait()
	g.Expect(tr.Len()).To(Equal(1))
	g.Expect(tr.Stale(uid, "99")).To(BeTrue())
	g.Expect(tr.Stale(uid, "100")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
}

func TestGone(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tr := New()
	tr.Wrote(uid, "10")
	tr.Gone(uid)
	// Every cached copy is stale, whatever its version, and stays so.
	for _, rv := range []string{"10", "11", "18446744073709551614"} {
		g.Expect(tr.Stale(uid, rv)).To(BeTrue(), "cached version %s", rv)
	}
	g.Expect(tr.Len()).To(Equal(1))
	// A later, lower write does not undo it.
	tr.Wrote(uid, "12")
	g.Expect(tr.Stale(uid, "12")).To(BeTrue())
	// Forget, once the cache has seen the deletion.
	tr.Forget(uid)
	g.Expect(tr.Stale(uid, "10")).To(BeFalse())
	g.Expect(tr.Len()).To(Equal(0))
	tr.Gone("")
	g.Expect(tr.Len()).To(Equal(0))
}
