// Package ratelimit throttles events per key (an IP address, an email) with
// token buckets from golang.org/x/time/rate, keeping the most recent keys in a
// bounded LRU. Limits are per server process: with N replicas a client gets up
// to N times the limit, which still stops brute force.
package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// MaxKeys bounds the keys one limiter keeps (the least recently used go first),
// and MaxKeyBytes the size of each: a longer key is kept as its SHA-256 (64 hex
// characters). A full limiter of 100 000 keys holds about 20 MB.
const (
	MaxKeys     = 100_000
	MaxKeyBytes = 64
)

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
	return NewSized(burst, window, MaxKeys)
}

// NewSized is New keeping at most maxKeys keys.
func NewSized(burst int, window time.Duration, maxKeys int) *Limiter {
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
	if len(key) > MaxKeyBytes {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:])
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

// Len returns how many keys the limiter keeps now.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	return l.buckets.Len()
}
