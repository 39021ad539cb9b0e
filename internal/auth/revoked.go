package auth

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// RevokedSessions is the per-process set of sessions ended while their access
// tokens may still be alive. The middleware consults it on every request, so a
// token of an ended session stops working without a database query.
// Entries older than the keep window are pruned: by then every access token of
// the session has expired anyway. Safe for concurrent use.
type RevokedSessions struct {
	keep time.Duration
	mu   sync.RWMutex
	ids  map[uuid.UUID]time.Time // session -> when it was revoked
	// watch holds what waits for a session's end (Watch).
	watch map[uuid.UUID]map[*func()]struct{}
}

// NewRevokedSessions returns an empty set that keeps an entry for keep after its
// revocation: the access-token lifetime plus the verification leeway and a
// margin for clock skew between replicas.
func NewRevokedSessions(keep time.Duration) *RevokedSessions {
	return &RevokedSessions{keep: keep, ids: map[uuid.UUID]time.Time{}}
}

// Keep is how long after its revocation a session stays in the set.
func (r *RevokedSessions) Keep() time.Duration { return r.keep }

// Has reports whether session was revoked. A nil set holds nothing.
func (r *RevokedSessions) Has(session uuid.UUID) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.ids[session]
	return ok
}

// Add records sessions as revoked at at. Adding one twice keeps the later time.
func (r *RevokedSessions) Add(at time.Time, sessions ...uuid.UUID) {
	var ended []func()
	r.mu.Lock()
	for _, s := range sessions {
		if old, ok := r.ids[s]; !ok || at.After(old) {
			r.ids[s] = at
		}
		for f := range r.watch[s] {
			ended = append(ended, *f)
		}
		delete(r.watch, s)
	}
	r.mu.Unlock()
	for _, f := range ended {
		f()
	}
}

// Watch calls ended once session is revoked (at once when it already is),
// unless stop was called first. ended must not block (it cancels a
// websocket's context). A nil set never calls it.
func (r *RevokedSessions) Watch(session uuid.UUID, ended func()) (stop func()) {
	if r == nil {
		return func() {}
	}
	key := &ended
	r.mu.Lock()
	if _, done := r.ids[session]; done {
		r.mu.Unlock()
		ended()
		return func() {}
	}
	if r.watch == nil {
		r.watch = map[uuid.UUID]map[*func()]struct{}{}
	}
	if r.watch[session] == nil {
		r.watch[session] = map[*func()]struct{}{}
	}
	r.watch[session][key] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if w := r.watch[session]; w != nil {
			delete(w, key)
			if len(w) == 0 {
				delete(r.watch, session)
			}
		}
	}
}

// Prune forgets the sessions revoked before now minus the keep window.
func (r *RevokedSessions) Prune(now time.Time) {
	cutoff := now.Add(-r.keep)
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, at := range r.ids {
		if at.Before(cutoff) {
			delete(r.ids, s)
		}
	}
}

// Len returns how many sessions the set holds.
func (r *RevokedSessions) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}
