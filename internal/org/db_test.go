package org_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/dbtest"
)

// These tests check the tenancy invariants in PostgreSQL itself, with plain SQL:
// whatever a service does (or forgets), the database refuses to break them.

// pqErr returns err's *pq.Error, failing the test when err is nil or another error.
func pqErr(t *testing.T, err error, what string) *pq.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error", what)
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v (%T) is not a PostgreSQL error", what, err, err)
	}
	return pe
}

// wantViolation fails unless err is a PostgreSQL error with SQLSTATE code on constraint
// (any constraint when empty) and, when msg is not empty, a message containing it.
func wantViolation(t *testing.T, err error, what, code, constraint, msg string) {
	t.Helper()
	pe := pqErr(t, err, what)
	if string(pe.Code) != code || (constraint != "" && pe.Constraint != constraint) || !strings.Contains(pe.Message, msg) {
		t.Fatalf("%s: got SQLSTATE %s constraint %q message %q, want %s %q containing %q",
			what, pe.Code, pe.Constraint, pe.Message, code, constraint, msg)
	}
}

type fixture struct {
	org                   uuid.UUID
	owner, admin, member1 uuid.UUID
}

// newOrg commits an organization with an OWNER, an ADMIN and a MEMBER.
func newOrg(t *testing.T) fixture {
	t.Helper()
	f := fixture{owner: dbtest.NewUser(t, database.DB), admin: dbtest.NewUser(t, database.DB), member1: dbtest.NewUser(t, database.DB)}
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	f.org = dbtest.NewOrgTx(t, tx)
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER'), ($1, $3, 'ADMIN'), ($1, $4, 'MEMBER')`,
		f.org, f.owner, f.admin, f.member1)
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit a well-formed organization: %v", err)
	}
	return f
}

// roles returns org's members by role, as committed.
func roles(t *testing.T, org uuid.UUID) map[uuid.UUID]string {
	t.Helper()
	var rows []struct {
		User uuid.UUID `db:"user_id"`
		Role string    `db:"role"`
	}
	if err := database.DB.Select(&rows, `SELECT user_id, role FROM organization_members WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	out := map[uuid.UUID]string{}
	for _, r := range rows {
		out[r.User] = r.Role
	}
	return out
}

func ownerCount(t *testing.T, org uuid.UUID) int {
	t.Helper()
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM organization_members WHERE organization_id = $1 AND role = 'OWNER'`, org); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDBAtMostOneOwner(t *testing.T) {
	t.Parallel()
	t.Run("insert", func(t *testing.T) {
		f := newOrg(t)
		_, err := database.DB.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, f.org, dbtest.NewUser(t, database.DB))
		wantViolation(t, err, "insert a second owner", "23505", "organization_members_one_owner", "")
		if n := ownerCount(t, f.org); n != 1 {
			t.Fatalf("%d owners, want 1", n)
		}
	})
	t.Run("update", func(t *testing.T) {
		f := newOrg(t)
		_, err := database.DB.Exec(`UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2`, f.org, f.admin)
		wantViolation(t, err, "promote an admin beside the owner", "23505", "organization_members_one_owner", "")
		if r := roles(t, f.org); r[f.owner] != "OWNER" || r[f.admin] != "ADMIN" {
			t.Fatalf("roles after the refused promotion: %v", r)
		}
	})
	t.Run("update inside a transaction fails at the statement", func(t *testing.T) {
		// The index is not deferred: the second owner is refused at once, not at commit.
		f := newOrg(t)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		_, err := tx.Exec(`UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2`, f.org, f.member1)
		wantViolation(t, err, "promote a member beside the owner", "23505", "organization_members_one_owner", "")
	})
	t.Run("other organizations are independent", func(t *testing.T) {
		// The index is partial and per organization: two organizations have one owner each,
		// and one user may own both.
		a, b := newOrg(t), newOrg(t)
		dbtest.Exec(t, database.DB, `UPDATE organization_members SET role = 'MEMBER' WHERE organization_id = $1 AND user_id = $2`, b.org, b.admin)
		dbtest.Exec(t, database.DB, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'ADMIN')`, b.org, a.owner)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'ADMIN' WHERE organization_id = $1 AND user_id = $2`, b.org, b.owner)
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2`, b.org, a.owner)
		if err := tx.Commit(); err != nil {
			t.Fatalf("one user owning two organizations: %v", err)
		}
		if ownerCount(t, a.org) != 1 || ownerCount(t, b.org) != 1 {
			t.Fatalf("owners: %d and %d, want 1 and 1", ownerCount(t, a.org), ownerCount(t, b.org))
		}
	})
}

func TestDBAtLeastOneOwnerAtCommit(t *testing.T) {
	t.Parallel()
	const check = "has no owner"
	t.Run("demote the owner", func(t *testing.T) {
		f := newOrg(t)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		// Deferred: the statement itself succeeds; the commit fails.
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'ADMIN' WHERE organization_id = $1 AND user_id = $2`, f.org, f.owner)
		wantViolation(t, tx.Commit(), "commit an organization whose owner was demoted", "23514", "organization_has_owner", check)
		if r := roles(t, f.org); r[f.owner] != "OWNER" {
			t.Fatalf("the demotion was committed: %v", r)
		}
	})
	t.Run("demote the owner without a transaction", func(t *testing.T) {
		f := newOrg(t)
		_, err := database.DB.Exec(`UPDATE organization_members SET role = 'MEMBER' WHERE organization_id = $1 AND user_id = $2`, f.org, f.owner)
		wantViolation(t, err, "demote the owner (autocommit)", "23514", "organization_has_owner", check)
		if ownerCount(t, f.org) != 1 {
			t.Fatal("the owner was demoted")
		}
	})
	t.Run("delete the owner", func(t *testing.T) {
		f := newOrg(t)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		dbtest.Exec(t, tx, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, f.org, f.owner)
		wantViolation(t, tx.Commit(), "commit an organization whose owner was deleted", "23514", "organization_has_owner", check)
		if r := roles(t, f.org); r[f.owner] != "OWNER" || len(r) != 3 {
			t.Fatalf("the deletion was committed: %v", r)
		}
	})
	t.Run("delete the owner's user", func(t *testing.T) {
		// ON DELETE CASCADE from users must not orphan the organization either.
		f := newOrg(t)
		_, err := database.DB.Exec(`DELETE FROM users WHERE id = $1`, f.owner)
		wantViolation(t, err, "delete the user who owns an organization", "23514", "organization_has_owner", check)
		if ownerCount(t, f.org) != 1 {
			t.Fatal("the owner's membership is gone")
		}
	})
	t.Run("organization without members", func(t *testing.T) {
		slug := "lonely-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		dbtest.Exec(t, tx, `INSERT INTO organizations (name, slug) VALUES ('Lonely', $1)`, slug)
		wantViolation(t, tx.Commit(), "commit an organization with no member", "23514", "organization_has_owner", check)
		var n int
		if err := database.DB.Get(&n, `SELECT count(*) FROM organizations WHERE slug = $1`, slug); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("the ownerless organization was committed")
		}
	})
	t.Run("organization with only an admin", func(t *testing.T) {
		slug := "adminonly-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		var org uuid.UUID
		if err := tx.Get(&org, `INSERT INTO organizations (name, slug) VALUES ('Admin only', $1) RETURNING id`, slug); err != nil {
			t.Fatal(err)
		}
		dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'ADMIN')`, org, dbtest.NewUser(t, database.DB))
		wantViolation(t, tx.Commit(), "commit an organization with an admin and no owner", "23514", "organization_has_owner", check)
	})
	t.Run("transfer", func(t *testing.T) {
		f := newOrg(t)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'ADMIN' WHERE organization_id = $1 AND user_id = $2`, f.org, f.owner)
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2`, f.org, f.member1)
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit a transfer: %v", err)
		}
		r := roles(t, f.org)
		if ownerCount(t, f.org) != 1 || r[f.member1] != "OWNER" || r[f.owner] != "ADMIN" || r[f.admin] != "ADMIN" {
			t.Fatalf("roles after the transfer: %v", r)
		}
	})
	t.Run("transfer then remove the old owner", func(t *testing.T) {
		f := newOrg(t)
		tx := database.DB.MustBegin()
		defer tx.Rollback() //nolint:errcheck
		dbtest.Exec(t, tx, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, f.org, f.owner)
		dbtest.Exec(t, tx, `UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2`, f.org, f.admin)
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit a delete-then-promote: %v", err)
		}
		if r := roles(t, f.org); len(r) != 2 || r[f.admin] != "OWNER" {
			t.Fatalf("roles: %v", r)
		}
	})
	t.Run("deleting the organization", func(t *testing.T) {
		// The cascade removes the owner with the organization: nothing to check then.
		f := newOrg(t)
		dbtest.Exec(t, database.DB, `DELETE FROM organizations WHERE id = $1`, f.org)
		if r := roles(t, f.org); len(r) != 0 {
			t.Fatalf("members left: %v", r)
		}
	})
}

func TestDBMembershipCannotMoveBetweenOrganizations(t *testing.T) {
	t.Parallel()
	a, b := newOrg(t), newOrg(t)
	_, err := database.DB.Exec(`UPDATE organization_members SET organization_id = $2 WHERE organization_id = $1 AND user_id = $3`, a.org, b.org, a.member1)
	wantViolation(t, err, "move a member to another organization", "23514", "", "cannot move")

	// Inside a transaction the check is deferred: it fires at commit.
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	dbtest.Exec(t, tx, `UPDATE organization_members SET organization_id = $2 WHERE organization_id = $1 AND user_id = $3`, a.org, b.org, a.admin)
	wantViolation(t, tx.Commit(), "commit a moved admin", "23514", "", "cannot move")

	ra, rb := roles(t, a.org), roles(t, b.org)
	if len(ra) != 3 || len(rb) != 3 || ra[a.member1] != "MEMBER" || ra[a.admin] != "ADMIN" {
		t.Fatalf("memberships after refused moves: a=%v b=%v", ra, rb)
	}
}

func TestDBAuditEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	f := newOrg(t)
	var id uuid.UUID
	if err := database.DB.Get(&id, `INSERT INTO audit_events (organization_id, actor_id, action, target_type, target_id)
		VALUES ($1, $2, 'test.recorded', 'member', $3) RETURNING id`, f.org, f.owner, f.admin.String()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, query string }{
		{"update", `UPDATE audit_events SET action = 'test.tampered' WHERE organization_id = $1`},
		{"update metadata", `UPDATE audit_events SET metadata = '{"x":1}' WHERE organization_id = $1 AND id = $2`},
		{"delete", `DELETE FROM audit_events WHERE organization_id = $1`},
		{"truncate", `TRUNCATE audit_events`},
		{"truncate cascade", `TRUNCATE audit_events CASCADE`},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []any{f.org, id}
			if strings.HasPrefix(c.query, "TRUNCATE") {
				args = nil
			} else if !strings.Contains(c.query, "$2") {
				args = args[:1]
			}
			_, err := database.DB.Exec(c.query, args...)
			wantViolation(t, err, c.name+" audit_events", "42501", "", "append-only")
		})
	}
	var rows []struct {
		Action   string `db:"action"`
		Metadata string `db:"metadata"`
	}
	if err := database.DB.Select(&rows, `SELECT action, metadata::text AS metadata FROM audit_events WHERE organization_id = $1`, f.org); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Action != "test.recorded" || rows[0].Metadata != "{}" {
		t.Fatalf("audit events after refused changes: %+v", rows)
	}
	var total int
	if err := database.DB.Get(&total, `SELECT count(*) FROM audit_events`); err != nil {
		t.Fatal(err)
	}
	if total == 0 {
		t.Fatal("audit_events is empty: a TRUNCATE went through")
	}
}

func token32() []byte {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck
	return b
}

func TestDBOnePendingInvitationPerEmail(t *testing.T) {
	t.Parallel()
	f := newOrg(t)
	other := newOrg(t)
	email := fmt.Sprintf("invitee-%s@x.test", uuid.NewString()[:8])
	insert := func(org uuid.UUID, status string) error {
		_, err := database.DB.Exec(`INSERT INTO invitations (organization_id, email, role, status, token_hash, invited_by, expires_at)
			VALUES ($1, $2, 'MEMBER', $3, $4, NULL, now() + interval '7 days')`, org, email, status, token32())
		return err
	}
	if err := insert(f.org, "PENDING"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, insert(f.org, "PENDING"), "a second pending invitation", "23505", "invitations_one_pending", "")

	// Only pending ones are unique: history of the same address is kept, and another
	// organization may invite it too.
	for _, s := range []string{"ACCEPTED", "REVOKED", "DECLINED", "EXPIRED"} {
		if err := insert(f.org, s); err != nil {
			t.Fatalf("a %s invitation beside a pending one: %v", s, err)
		}
	}
	if err := insert(other.org, "PENDING"); err != nil {
		t.Fatalf("a pending invitation of the same address in another organization: %v", err)
	}

	// Re-opening a closed invitation beside the pending one is refused too.
	_, err := database.DB.Exec(`UPDATE invitations SET status = 'PENDING' WHERE organization_id = $1 AND email = $2 AND status = 'REVOKED'`, f.org, email)
	wantViolation(t, err, "re-open a revoked invitation beside a pending one", "23505", "invitations_one_pending", "")

	var pending int
	if err := database.DB.Get(&pending, `SELECT count(*) FROM invitations WHERE organization_id = $1 AND email = $2 AND status = 'PENDING'`, f.org, email); err != nil {
		t.Fatal(err)
	}
	if pending != 1 {
		t.Fatalf("%d pending invitations, want 1", pending)
	}
}

func TestDBInvitationTokenUniquePerOrganization(t *testing.T) {
	t.Parallel()
	a, b := newOrg(t), newOrg(t)
	hash := token32()
	insert := func(org uuid.UUID) error {
		email := fmt.Sprintf("invitee-%s@x.test", uuid.NewString()[:8])
		_, err := database.DB.Exec(`INSERT INTO invitations (organization_id, email, role, token_hash, invited_by, expires_at)
			VALUES ($1, $2, 'MEMBER', $3, NULL, now() + interval '7 days')`, org, email, hash)
		return err
	}
	if err := insert(a.org); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, insert(a.org), "the same token hash twice in one organization", "23505", "invitations_org_token_key", "")

	ctx := context.Background()
	inv, err := (org.Store{}).InvitationByToken(ctx, database.DB, hash, time.Now())
	if err != nil || inv == nil || inv.OrganizationID != a.org {
		t.Fatalf("look up a token held once: %+v, %v; want organization %s's invitation", inv, err, a.org)
	}

	// The key is per organization: another one may hold the same hash. The global lookup
	// by token then picks neither.
	if err := insert(b.org); err != nil {
		t.Fatalf("the same token hash in another organization: %v", err)
	}
	if inv, err := (org.Store{}).InvitationByToken(ctx, database.DB, hash, time.Now()); err != nil || inv != nil {
		t.Fatalf("look up a token held by two organizations: %+v, %v; want none", inv, err)
	}
}

// TestDBEmailsHoldNoControlCharacters: the database refuses an email with a C0
// or C1 control character, whatever the service checks.
func TestDBEmailsHoldNoControlCharacters(t *testing.T) {
	t.Parallel()
	for _, email := range []string{"a\u0001b@x.test", "a\u007f@x.test", "\u0080@x.test", "a@x\u009f.test"} {
		_, err := database.DB.Exec(`INSERT INTO users (email, name, password_hash) VALUES ($1, 'Control', '$argon2id$x')`, email)
		wantViolation(t, err, fmt.Sprintf("user email %q", email), "23514", "users_email_no_control", "")
	}
	f := newOrg(t)
	_, err := database.DB.Exec(`INSERT INTO invitations (organization_id, email, role, token_hash, expires_at)
		VALUES ($1, $2, 'MEMBER', sha256('x'), now() + interval '1 day')`, f.org, "\u0085@x.test")
	wantViolation(t, err, "invitation email", "23514", "invitations_email_no_control", "")
	dbtest.Exec(t, database.DB, `INSERT INTO users (email, name, password_hash) VALUES ($1, 'Accent', '$argon2id$x')`,
		"é-"+strings.ReplaceAll(uuid.NewString(), "-", "")+"@x.test")
}

// TestDBSeats: members plus pending, unexpired invitations never pass the
// organization's seats. A new member counts the members only (its own
// invitation held its seat); an invitation counts when it becomes pending and
// unexpired at its updated_at, and an expired or closed one holds none.
func TestDBSeats(t *testing.T) {
	t.Parallel()
	f := newOrg(t) // 3 members
	dbtest.Exec(t, database.DB, `UPDATE organization_limits SET seats = 4 WHERE organization_id = $1`, f.org)
	invite := func(expires string) (uuid.UUID, error) {
		var id uuid.UUID
		err := database.DB.Get(&id, `INSERT INTO invitations (organization_id, email, role, token_hash, expires_at)
			VALUES ($1, $2, 'MEMBER', $3, now() + $4::interval) RETURNING id`, f.org, fmt.Sprintf("seat-%s@x.test", uuid.NewString()[:8]), token32(), expires)
		return id, err
	}
	quota := func(err error, what string) {
		t.Helper()
		wantViolation(t, err, what, "23514", "organization_quota", "limit of 4 seats")
		if pe := pqErr(t, err, what); pe.Detail != "seats 4" {
			t.Fatalf("%s: DETAIL %q, want %q", what, pe.Detail, "seats 4")
		}
	}
	stale, err := invite("-1 day") // expired: holds no seat
	if err != nil {
		t.Fatalf("an expired invitation: %v", err)
	}
	pending, err := invite("7 days")
	if err != nil {
		t.Fatalf("the 4th seat's invitation: %v", err)
	}
	_, err = invite("7 days")
	quota(err, "a 5th seat's invitation")
	_, err = database.DB.Exec(`UPDATE invitations SET expires_at = now() + interval '7 days', updated_at = now() WHERE organization_id = $1 AND id = $2`, f.org, stale)
	quota(err, "renewing an expired invitation into a 5th seat")

	// The members alone fit: the pending invitation's member joins.
	if _, err := database.DB.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'MEMBER')`, f.org, dbtest.NewUser(t, database.DB)); err != nil {
		t.Fatalf("a 4th member: %v", err)
	}
	dbtest.Exec(t, database.DB, `UPDATE invitations SET status = 'ACCEPTED' WHERE organization_id = $1 AND id = $2`, f.org, pending)
	_, err = database.DB.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'MEMBER')`, f.org, dbtest.NewUser(t, database.DB))
	quota(err, "a 5th member")

	// A seat freed is a seat to give.
	dbtest.Exec(t, database.DB, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, f.org, f.member1)
	if _, err := invite("7 days"); err != nil {
		t.Fatalf("an invitation to the freed seat: %v", err)
	}
}
