package volumeattachment

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStartTimes(t *testing.T) {
	stamp := metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	tests := []struct {
		name    string
		seen    *time.Time // first sighting, nil for none
		seenUID string
		want    time.Duration
	}{
		{name: "first sighting right after creation is used", seen: ptrTime(stamp.Add(700 * time.Millisecond)), seenUID: "u1", want: 300 * time.Millisecond},
		{name: "no sighting (restarted process): the object's timestamp", want: time.Second},
		{name: "a sighting of another object with the same name is ignored", seen: ptrTime(stamp.Add(700 * time.Millisecond)), seenUID: "old", want: time.Second},
		{name: "a sighting before the creation timestamp (clock skew) is not the start", seen: ptrTime(stamp.Add(-5 * time.Second)), seenUID: "u1", want: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var s startTimes
			if tc.seen != nil {
				s.observe("attach", "va", "u1", *tc.seen)
				if tc.seenUID != "u1" {
					s.forget("va")
					s.observe("attach", "va", "old", *tc.seen)
				}
			}
			g.Expect(s.since("attach", "va", "u1", stamp, stamp.Add(time.Second))).To(Equal(tc.want))
			g.Expect(s.seen).To(BeEmpty(), "the entry is consumed")
		})
	}
}

func TestStartTimesKeepsTheFirstSighting(t *testing.T) {
	g := NewWithT(t)
	stamp := metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	var s startTimes
	s.observe("detach", "va", "u1", stamp.Add(100*time.Millisecond))
	s.observe("detach", "va", "u1", stamp.Add(900*time.Millisecond))
	g.Expect(s.since("detach", "va", "u1", stamp, stamp.Add(time.Second))).To(Equal(900 * time.Millisecond))
	s.observe("attach", "va", "u1", stamp.Time)
	s.forget("va")
	g.Expect(s.seen).To(BeEmpty())
}

func ptrTime(t time.Time) *time.Time { return &t }
