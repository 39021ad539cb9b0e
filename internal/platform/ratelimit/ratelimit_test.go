package ratelimit

import (
	"fmt"
	"strings"
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

func TestLimiterMemoryStaysBoundedUnderAFloodOfKeys(t *testing.T) {
	const bound = 1_000
	l := NewSized(5, time.Minute, bound)
	now := time.Now()
	long := strings.Repeat("x", 1<<10)
	for i := range 10_000 {
		if !l.Allow(fmt.Sprintf("%d-%s@example.test", i, long), now) {
			t.Fatalf("first event of key %d refused", i)
		}
		if l.Len() > bound {
			t.Fatalf("after %d keys the limiter keeps %d, over its bound %d", i+1, l.Len(), bound)
		}
	}
	if l.Len() != bound {
		t.Fatalf("Len = %d, want %d", l.Len(), bound)
	}
	for _, k := range l.buckets.Keys() {
		if len(k) > MaxKeyBytes {
			t.Fatalf("a %d-byte key is kept as is", len(k))
		}
	}
	// A long key is still one key: its events are counted together.
	k := "a" + long
	for range 5 {
		l.Allow(k, now)
	}
	if l.Allow(k, now) {
		t.Fatal("a hashed key was not throttled")
	}
	if l.Allow("b"+long, now) == false {
		t.Fatal("two long keys share a bucket")
	}
}
