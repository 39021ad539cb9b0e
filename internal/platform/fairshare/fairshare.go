// Package fairshare caps the operations in flight per key (an organization),
// with a short queue in arrival order: one key's flood waits behind its own
// share and leaves the rest of the process to the other keys. It holds no
// business rules: the caller says which keys an operation counts against.
package fairshare

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Options size a Limiter.
type Options struct {
	// Slots is the operations of one key served at once (at least 1).
	Slots int
	// Queue is the operations of one key that may wait for a slot; one more is
	// refused at once (ErrQueueFull).
	Queue int
	// Wait bounds the time an operation waits for its slots in all; past it
	// the operation is refused (ErrWaited).
	Wait time.Duration
	// Observe, when set, is told of every acquisition that had to wait: how
	// long, and whether it got its slots in the end.
	Observe func(waited time.Duration, admitted bool)
}

// Refusals.
var (
	ErrQueueFull = errors.New("fairshare: too many operations of this key waiting")
	ErrWaited    = errors.New("fairshare: no slot free in time")
)

// Limiter counts the operations in flight per key. Its table holds only the
// keys with an operation in flight or waiting: its memory is bounded by the
// operations the process serves, not by the keys it has seen.
type Limiter struct {
	o    Options
	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	busy    int       // slots held
	waiters list.List // *waiter, in arrival order
}

type waiter struct {
	ready   chan struct{} // closed when a slot is handed over
	granted bool          // under mu: the slot is the waiter's
}

// New returns a Limiter with o (Slots below 1 count as 1).
func New(o Options) *Limiter {
	o.Slots = max(o.Slots, 1)
	o.Queue = max(o.Queue, 0)
	return &Limiter{o: o, keys: map[string]*entry{}}
}

// Slots is the operations of one key served at once.
func (l *Limiter) Slots() int { return l.o.Slots }

// Acquire takes one slot of each distinct key, in sorted order (so that two
// operations naming the same keys cannot each hold one the other waits for),
// waiting in arrival order behind the key's earlier waiters, at most Wait in
// all. It returns the function that gives them back (call it once), or the
// refusal: ErrQueueFull, ErrWaited or ctx's error, with every slot taken so
// far given back. No keys: nothing is counted.
func (l *Limiter) Acquire(ctx context.Context, keys []string) (release func(), err error) {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	var (
		start   time.Time
		timer   *time.Timer
		waited  bool
		taken   = 0
		expired <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if waited && l.o.Observe != nil {
			l.o.Observe(time.Since(start), err == nil)
		}
	}()
	for _, k := range keys {
		w, el, e := l.enter(k)
		switch {
		case e != nil:
			l.giveBack(keys[:taken])
			return nil, e
		case w != nil:
			if !waited {
				waited, start = true, time.Now()
				timer = time.NewTimer(l.o.Wait)
				expired = timer.C
			}
			if err := l.await(ctx, k, w, el, expired); err != nil {
				l.giveBack(keys[:taken])
				return nil, err
			}
		}
		taken++
	}
	return func() { l.giveBack(keys) }, nil
}

// enter takes a slot of key at once (nil, nil, nil), queues a waiter for
// one, or refuses with ErrQueueFull.
func (l *Limiter) enter(key string) (*waiter, *list.Element, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		e = &entry{}
		l.keys[key] = e
	}
	if e.busy < l.o.Slots && e.waiters.Len() == 0 {
		e.busy++
		return nil, nil, nil
	}
	if e.waiters.Len() >= l.o.Queue {
		return nil, nil, ErrQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	return w, e.waiters.PushBack(w), nil
}

// await waits for w's slot of key until ctx ends or expired fires.
func (l *Limiter) await(ctx context.Context, key string, w *waiter, el *list.Element, expired <-chan time.Time) error {
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = ErrWaited
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted { // handed over meanwhile: it is ours
		return nil
	}
	e := l.keys[key]
	e.waiters.Remove(el)
	l.forget(key, e)
	return err
}

// giveBack returns one slot of each key: to the key's first waiter, if any.
func (l *Limiter) giveBack(keys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		e := l.keys[k]
		if front := e.waiters.Front(); front != nil {
			w := e.waiters.Remove(front).(*waiter)
			w.granted = true
			close(w.ready)
			continue
		}
		e.busy--
		l.forget(k, e)
	}
}

// forget drops key's entry once nothing holds or waits for it (under mu).
func (l *Limiter) forget(key string, e *entry) {
	if e.busy <= 0 && e.waiters.Len() == 0 {
		delete(l.keys, key)
	}
}

// Stats is what a Limiter holds now.
type Stats struct {
	Keys    int // keys with an operation in flight or waiting
	Busy    int // slots held, all keys
	Waiting int // operations waiting, all keys
}

// Stats reads the table.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Keys: len(l.keys)}
	for _, e := range l.keys {
		s.Busy += e.busy
		s.Waiting += e.waiters.Len()
	}
	return s
}
