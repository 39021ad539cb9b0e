// Package ratelimit throttles events per key (an IP address, an email) with
// token buckets from golang.org/x/time/rate, keeping the most recent keys in a
// bounded LRU. Limits are per server process: with N replicas a client gets up
// to N times the limit, which still stops brute force.
package ratelimit

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// maxKeys bounds the memory one limiter uses.
const maxKeys = 100_000

// Limiter allows, per key, events at a steady rate with bursts. A nil *Limiter
// allows everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	mu      sync.Mutex // makes get-or-create atomic
	buckets *expirable.LRU[string, *rate.Limiter]
}

// New allows burst events at once per key, refilled at burst per window.
func New(burst int, window time.Duration) *Limiter {
	return &Limiter{
		limit: rate.Limit(float64(burst) / window.Seconds()),
		burst: burst,
		// A bucket idle for a whole window is full again: forgetting it changes nothing.
		// (The LRU's timer runs on the wall clock; only the buckets see now.)
		buckets: expirable.NewLRU[string, *rate.Limiter](maxKeys, nil, window),
	}
}

// Allow takes one event for key at now, and reports whether it is within the limit.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if l == nil || key == "" {
		return true
	}
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
	}
	l.buckets.Add(key, b) // (re)starts the key's idle timer
	l.mu.Unlock()
	return b.AllowN(now, 1)
}
