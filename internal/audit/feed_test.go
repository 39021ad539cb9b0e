package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/notify"
	"tenantgraph/internal/tenant"
)

// runFeed starts a hub and a feed with limits on the package's database; both
// stop when t ends.
func runFeed(t *testing.T, limits FeedLimits) *Feed {
	t.Helper()
	hub := notify.New(database.DirectURL, database.DB, nil)
	f := NewFeed(database.DB, hub, func(context.Context, uuid.UUID, uuid.UUID) (tenant.Role, error) {
		return tenant.RoleOwner, nil
	}, limits, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { hub.Run(ctx) })
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-hub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub not ready")
	}
	return f
}

func subscribe(t *testing.T, f *Feed, org uuid.UUID, after *int64) *Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := f.Subscribe(ctx, SubscribeRequest{Org: org, User: uuid.New(), Role: tenant.RoleOwner, After: after})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// next returns the subscription's next events, failing after 5 s.
func next(t *testing.T, s *Subscription) ([]*FeedEvent, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Next(ctx)
}

func ids(evs []*FeedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// TestFeedResumesBetweenOutOfOrderCommits: event A is inserted first (the
// lower audit_events.seq) and commits after B was delivered. A subscriber
// receives B, then A; one resuming after B's cursor receives A: with seq as
// the cursor it would have skipped it.
func TestFeedResumesBetweenOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	f := runFeed(t, DefaultFeedLimits)
	org, _ := newOrg(t)
	seal(t, org)
	live := subscribe(t, f, org, nil)

	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	var a uuid.UUID
	var aSeq, bSeq int64
	if err := tx.QueryRow(`INSERT INTO audit_events (organization_id, action) VALUES ($1, 'test.a') RETURNING id, seq`, org).Scan(&a, &aSeq); err != nil {
		t.Fatal(err)
	}
	b := insertEvent(t, org, "test.b")
	if err := database.DB.Get(&bSeq, `SELECT seq FROM audit_events WHERE id = $1`, b); err != nil || bSeq <= aSeq {
		t.Fatalf("b's seq %d is not after a's %d (%v)", bSeq, aSeq, err)
	}
	seal(t, org)
	got, err := next(t, live)
	if err != nil || len(got) != 1 || got[0].ID != b {
		t.Fatalf("first events %v (%v), want only b %s", ids(got), err, b)
	}
	afterB := got[0].Seq
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	seal(t, org)
	got, err = next(t, live)
	if err != nil || len(got) != 1 || got[0].ID != a || got[0].Seq != afterB+1 {
		t.Fatalf("then %v (%v), want a %s right after b", ids(got), err, a)
	}
	resumed := subscribe(t, f, org, &afterB)
	got, err = next(t, resumed)
	if err != nil || len(got) != 1 || got[0].ID != a {
		t.Fatalf("resuming after b's cursor gave %v (%v), want a %s", ids(got), err, a)
	}
}

// TestFeedEndsASlowConsumer: a live subscription that falls more than MaxLag
// events behind ends with SLOW_CONSUMER and the cursor of the last event it
// was given; resuming from there (a replay from the database) loses nothing.
func TestFeedEndsASlowConsumer(t *testing.T) {
	t.Parallel()
	f := runFeed(t, FeedLimits{MaxLag: 5, MaxReplay: 100, MaxTypes: 20})
	org, _ := newOrg(t)
	seal(t, org)
	slow := subscribe(t, f, org, nil)
	fast := subscribe(t, f, org, nil)
	first := insertEvent(t, org, "test.first")
	seal(t, org)
	got, err := next(t, slow)
	if err != nil || len(got) != 1 || got[0].ID != first {
		t.Fatalf("slow's first events %v (%v)", ids(got), err)
	}
	last := got[0].Seq
	// The fast one keeps up, three events at a time; the slow one reads nothing.
	var want, seen []uuid.UUID
	for range 5 {
		for range 3 {
			want = append(want, insertEvent(t, org, "test.more"))
		}
		seal(t, org)
		for len(seen) < len(want)+1 {
			got, err := next(t, fast)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, ids(got)...)
		}
	}
	_, err = next(t, slow)
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.SlowConsumer || e.Extensions["lastCursor"] != EventCursor(last) {
		t.Fatalf("slow consumer got %v, want SLOW_CONSUMER with lastCursor %s", err, EventCursor(last))
	}
	resumed := subscribe(t, f, org, &last)
	var replayed []uuid.UUID
	for len(replayed) < len(want) {
		got, err := next(t, resumed)
		if err != nil {
			t.Fatal(err)
		}
		replayed = append(replayed, ids(got)...)
	}
	for i := range want {
		if replayed[i] != want[i] {
			t.Fatalf("replayed[%d] = %s, want %s", i, replayed[i], want[i])
		}
	}
}

// TestFeedRefusesABadCursor: a cursor past the organization's newest event,
// or further back than MaxReplay, is BAD_USER_INPUT on after.
func TestFeedRefusesABadCursor(t *testing.T) {
	t.Parallel()
	f := runFeed(t, FeedLimits{MaxLag: 5, MaxReplay: 2, MaxTypes: 1})
	org, _ := newOrg(t)
	for range 4 {
		insertEvent(t, org, "test.x")
	}
	seal(t, org)
	ctx := context.Background()
	for _, tc := range []struct {
		after int64
		types []string
		field string
	}{{after: 99, field: "after"}, {after: 0, field: "after"}, {after: 3, types: []string{"a.b", "c.*"}, field: "types"},
		{after: 3, types: []string{"order"}, field: "types[0]"}} {
		after := tc.after
		_, err := f.Subscribe(ctx, SubscribeRequest{Org: org, User: uuid.New(), Role: tenant.RoleOwner, After: &after, Types: tc.types})
		if e, ok := apperr.As(err); !ok || e.Code != apperr.BadUserInput || e.Field != tc.field {
			t.Errorf("after %d types %v: %v, want BAD_USER_INPUT on %s", tc.after, tc.types, err, tc.field)
		}
	}
}
