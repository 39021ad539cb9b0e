package ratelimit

import (
	"testing"
	"time"
)

func TestLimiterAllowsBurstThenRefills(t *testing.T) {
	l := New(3, time.Minute)
	now := time.Now()
	for i := range 3 {
		if !l.Allow("a", now) {
			t.Fatalf("event %d refused within the burst", i+1)
		}
	}
	if l.Allow("a", now) {
		t.Fatal("event over the burst allowed")
	}
	if !l.Allow("b", now) {
		t.Fatal("another key is throttled too")
	}
	if !l.Allow("a", now.Add(21*time.Second)) {
		t.Fatal("no refill after a third of the window")
	}
	var none *Limiter
	if !none.Allow("a", now) {
		t.Fatal("a nil limiter refused")
	}
}
