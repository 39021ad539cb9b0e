package org_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/account"
	"tenantgraph/internal/apperr"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/org"
	"tenantgraph/internal/tenant"
)

// These tests drive the tenant gate on the database directly: which writes wait
// for which, and what a write racing its writer's removal may do.

func newGate() *tenant.Gate {
	return tenant.NewGate(database.DB, time.Now, audit.NewService(database.DB))
}

func newOrgService(g *tenant.Gate) *org.Service {
	return org.NewService(org.Deps{DB: database.DB, Gate: g, Audit: audit.NewService(database.DB),
		Users: account.Store{}.UsersByIDs, Now: time.Now})
}

// write is an ordinary tenant write: a row that references the organization
// (its foreign-key check takes FOR KEY SHARE on the organization row). It
// returns the row's seq, the order in which rows were written.
func write(ctx context.Context, t *tenant.Tx) (int64, error) {
	var seq int64
	err := t.GetContext(ctx, &seq, `INSERT INTO audit_events (organization_id, actor_id, action) VALUES ($1, $2, 'test.write') RETURNING seq`,
		t.Actor.OrganizationID, t.Actor.UserID)
	return seq, err
}

// awaitLockWait waits until a backend of the test database waits for a lock
// while running a statement containing pattern.
func awaitLockWait(t *testing.T, pattern string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := database.DB.Get(&n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, pattern); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement like %q waits for a lock after 10s", pattern)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGateOrdinaryWritesRunWhileTheOrganizationIsLocked: two members' ordinary
// writes (LockActor) in one organization run at the same time, and commit, while
// a membership change (LockOrganization) holds the organization row.
func TestGateOrdinaryWritesRunWhileTheOrganizationIsLocked(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newOrg(t)
	g := newGate()

	holding, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- g.Run(ctx, f.owner, f.org, org.RoleOwner, tenant.LockOrganization, func(*tenant.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding

	// Each writer waits inside its transaction until both are inside: they can
	// only both get there if neither waits for the other or for the organization.
	var inside sync.WaitGroup
	inside.Add(2)
	both := make(chan struct{})
	go func() { inside.Wait(); close(both) }()
	errs := make(chan error, 2)
	for _, user := range []uuid.UUID{f.admin, f.member1} {
		go func() {
			errs <- g.Run(ctx, user, f.org, org.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
				if _, err := write(ctx, tx); err != nil {
					return err
				}
				inside.Done()
				select {
				case <-both:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("ordinary write while the organization is locked: %v", err)
		}
	}
	select {
	case err := <-held:
		t.Fatalf("the membership change ended before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'test.write'`, f.org); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d writes committed, want 2", n)
	}
}

// TestGateWriteRacingRemoval: a write by a member being removed either commits
// before the removal or is refused (NOT_FOUND) and writes nothing; never after it.
func TestGateWriteRacingRemoval(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := newGate()
	orgs := newOrgService(g)
	removedSeq := func(f fixture) int64 {
		t.Helper()
		var seq int64
		if err := database.DB.Get(&seq, `SELECT seq FROM audit_events WHERE organization_id = $1 AND action = 'member.removed'`, f.org); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	writes := func(f fixture) int {
		t.Helper()
		var n int
		if err := database.DB.Get(&n, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'test.write'`, f.org); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("the write holds its membership: the removal waits for its commit", func(t *testing.T) {
		f := newOrg(t)
		inside, release := make(chan struct{}), make(chan struct{})
		var seq int64
		wrote := make(chan error, 1)
		go func() {
			wrote <- g.Run(ctx, f.member1, f.org, org.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
				var err error
				seq, err = write(ctx, tx)
				close(inside)
				<-release
				return err
			})
		}()
		<-inside
		removed := make(chan error, 1)
		go func() { removed <- orgs.RemoveMember(ctx, auth.Viewer{UserID: f.admin}, f.org, f.member1) }()
		awaitLockWait(t, "FOR UPDATE")
		close(release)
		if err := <-wrote; err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := <-removed; err != nil {
			t.Fatalf("removal: %v", err)
		}
		if rs := removedSeq(f); seq >= rs {
			t.Fatalf("write seq %d is not before the removal's %d", seq, rs)
		}
	})

	t.Run("the removal holds the membership: the write waits, then is refused", func(t *testing.T) {
		f := newOrg(t)
		inside, release := make(chan struct{}), make(chan struct{})
		removed := make(chan error, 1)
		go func() {
			removed <- g.Run(ctx, f.admin, f.org, org.RoleAdmin, tenant.LockOrganization, func(tx *tenant.Tx) error {
				if _, err := tx.ExecContext(ctx, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, f.org, f.member1); err != nil {
					return err
				}
				close(inside)
				<-release
				return nil
			})
		}()
		<-inside
		wrote := make(chan error, 1)
		go func() {
			wrote <- g.Run(ctx, f.member1, f.org, org.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
				_, err := write(ctx, tx)
				return err
			})
		}()
		awaitLockWait(t, "FOR SHARE")
		close(release)
		if err := <-removed; err != nil {
			t.Fatalf("removal: %v", err)
		}
		if e, ok := apperr.As(<-wrote); !ok || e.Code != apperr.NotFound {
			t.Fatalf("write after the removal committed: %v, want NOT_FOUND", e)
		}
		if n := writes(f); n != 0 {
			t.Fatalf("%d writes by a removed member", n)
		}
	})

	t.Run("free race", func(t *testing.T) {
		outcomes := map[string]int{}
		for range 20 {
			f := newOrg(t)
			var seq int64
			var wg sync.WaitGroup
			var werr, rerr error
			wg.Go(func() {
				werr = g.Run(ctx, f.member1, f.org, org.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
					var err error
					seq, err = write(ctx, tx)
					return err
				})
			})
			wg.Go(func() { rerr = orgs.RemoveMember(ctx, auth.Viewer{UserID: f.admin}, f.org, f.member1) })
			wg.Wait()
			if rerr != nil {
				t.Fatalf("removal: %v", rerr)
			}
			switch e, _ := apperr.As(werr); {
			case werr == nil:
				if rs := removedSeq(f); seq >= rs {
					t.Fatalf("write seq %d committed after the removal's %d", seq, rs)
				}
				outcomes["write first"]++
			case e != nil && e.Code == apperr.NotFound:
				if n := writes(f); n != 0 {
					t.Fatalf("refused write left %d rows", n)
				}
				outcomes["refused"]++
			default:
				t.Fatalf("write: %v", werr)
			}
		}
		t.Logf("outcomes of 20 races: %v", outcomes)
	})
}
