package fairshare

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSlotsQueueAndOrder(t *testing.T) {
	var mu sync.Mutex
	var observed []bool
	l := New(Options{Slots: 2, Queue: 2, Wait: time.Minute, Observe: func(_ time.Duration, ok bool) {
		mu.Lock()
		observed = append(observed, ok)
		mu.Unlock()
	}})
	ctx := context.Background()
	r1, err := l.Acquire(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Acquire(ctx, []string{"a", "a"}) // one slot however often a key is named
	if err != nil {
		t.Fatal(err)
	}
	// Another key is not held up.
	rb, err := l.Acquire(ctx, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	rb()
	// Two wait, in arrival order; a third is refused at once.
	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			r, err := l.Acquire(ctx, []string{"a"})
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			r()
		})
		waitFor(t, "a waiter", func() bool { return l.Stats().Waiting == i+1 })
	}
	if _, err := l.Acquire(ctx, []string{"a"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiter: %v, want ErrQueueFull", err)
	}
	// One slot freed: the first waiter takes it, and its release lets the
	// second in (freeing both at once would race the two to the channel).
	r1()
	if a, b := <-order, <-order; a != 0 || b != 1 {
		t.Fatalf("served %d then %d, want 0 then 1", a, b)
	}
	r2()
	wg.Wait()
	if s := l.Stats(); s != (Stats{}) {
		t.Fatalf("table not empty after every release: %+v", s)
	}
	if len(observed) != 2 || !observed[0] || !observed[1] {
		t.Fatalf("observed %v, want two admitted waits", observed)
	}
}

func TestWaitIsBounded(t *testing.T) {
	var refused int
	l := New(Options{Slots: 1, Queue: 4, Wait: 20 * time.Millisecond, Observe: func(d time.Duration, ok bool) {
		if !ok && d >= 20*time.Millisecond {
			refused++
		}
	}})
	r, err := l.Acquire(context.Background(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(context.Background(), []string{"a"}); !errors.Is(err, ErrWaited) {
		t.Fatalf("got %v, want ErrWaited", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Acquire(ctx, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	r()
	if s := l.Stats(); s != (Stats{}) || refused != 1 {
		t.Fatalf("stats %+v, %d refusals observed; want an empty table and 1", s, refused)
	}
}

// TestSeveralKeys: an operation counts against each key it names; slots are
// taken in sorted order, and one refused gives back those it held.
func TestSeveralKeys(t *testing.T) {
	l := New(Options{Slots: 1, Queue: 1, Wait: 20 * time.Millisecond})
	ctx := context.Background()
	rb, err := l.Acquire(ctx, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, []string{"b", "a"}); !errors.Is(err, ErrWaited) {
		t.Fatalf("got %v, want ErrWaited", err)
	}
	ra, err := l.Acquire(ctx, []string{"a"}) // "a" was given back
	if err != nil {
		t.Fatal(err)
	}
	ra()
	rb()
	rab, err := l.Acquire(ctx, []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Keys != 2 || s.Busy != 2 {
		t.Fatalf("stats %+v, want 2 keys busy", s)
	}
	rab()
	if s := l.Stats(); s != (Stats{}) {
		t.Fatalf("stats %+v, want empty", s)
	}
}
