package auth

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// The set keeps a session for the keep window after its latest revocation, then forgets it.
func TestRevokedSessionsPrune(t *testing.T) {
	now := time.Now()
	r := NewRevokedSessions(16 * time.Minute)
	old, recent, again := uuid.New(), uuid.New(), uuid.New()
	r.Add(now.Add(-17*time.Minute), old, again)
	r.Add(now.Add(-time.Minute), recent, again) // revoked again: the later time counts
	r.Add(now.Add(-20*time.Minute), recent)     // an older record does not shorten it
	r.Prune(now)
	if r.Has(old) || !r.Has(recent) || !r.Has(again) || r.Len() != 2 {
		t.Fatalf("after prune: old %v recent %v again %v len %d", r.Has(old), r.Has(recent), r.Has(again), r.Len())
	}
	var none *RevokedSessions
	if none.Has(recent) {
		t.Fatal("a nil set holds a session")
	}
}
