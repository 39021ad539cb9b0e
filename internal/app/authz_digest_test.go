package app_test

import (
	"testing"

	"github.com/google/uuid"
)

// TestAuthzDigestCoversEveryTable: the authorization tests' digest reads its
// tables from the catalog. The tables it once named by hand are among them,
// and tables created now, as a new area would create them, are covered without
// editing the tests: a write in scope changes the digest, a write out of scope
// does not. The tables live in one transaction, rolled back: no other test
// sees them. Not parallel: its DDL locks organizations and users (the foreign
// keys) while other tests write to them.
func TestAuthzDigestCoversEveryTable(t *testing.T) {
	tables, err := authzDigestTables(srv.DB)
	if err != nil {
		t.Fatal(err)
	}
	digested := map[string]bool{}
	for _, tb := range tables {
		digested[tb.name] = true
	}
	for _, want := range []string{"organizations", "organization_members", "invitations", "audit_events",
		"customers", "customer_notes", "mail_outbox", "users", "refresh_tokens", "user_tokens"} {
		if !digested[want] {
			t.Errorf("the digest does not cover %s (it covers %v)", want, digested)
		}
	}

	owner := srv.RegisterVerified(t, "digest-owner")
	org := srv.CreateOrg(t, owner, "digest "+uuid.NewString()[:8])
	other := srv.RegisterVerified(t, "digest-other")
	otherOrg := srv.CreateOrg(t, other, "digest other "+uuid.NewString()[:8])
	scope := authzScope{orgs: []uuid.UUID{org}, users: []uuid.UUID{owner.UserID}, emails: []string{owner.Email}}

	tx := srv.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A new area's tenant table, a table of per-user rows, and a global table
	// with no scoping column.
	exec(`CREATE TABLE zz_planted (organization_id uuid NOT NULL REFERENCES organizations (id),
		id uuid NOT NULL DEFAULT gen_random_uuid(), note text NOT NULL, PRIMARY KEY (organization_id, id))`)
	exec(`CREATE TABLE zz_planted_per_user (owner_id uuid NOT NULL REFERENCES users (id), note text NOT NULL)`)
	exec(`CREATE TABLE zz_planted_global (note text NOT NULL)`)
	tables, err = authzDigestTables(tx)
	if err != nil {
		t.Fatal(err)
	}
	query := authzDigestQuery(tables)
	digest := authzDigestOn(t, tx, query, scope)
	for _, step := range []struct {
		name, query string
		args        []any
		seen        bool
	}{
		{"a row of another organization", `INSERT INTO zz_planted (organization_id, note) VALUES ($1, 'other')`, []any{otherOrg}, false},
		{"a row of the organization", `INSERT INTO zz_planted (organization_id, note) VALUES ($1, 'mine')`, []any{org}, true},
		{"an update of the organization's row", `UPDATE zz_planted SET note = 'changed' WHERE organization_id = $1`, []any{org}, true},
		{"an update of another organization's row", `UPDATE zz_planted SET note = 'changed' WHERE organization_id = $1`, []any{otherOrg}, false},
		{"a row of another user", `INSERT INTO zz_planted_per_user (owner_id, note) VALUES ($1, 'other')`, []any{other.UserID}, false},
		{"a row of the user", `INSERT INTO zz_planted_per_user (owner_id, note) VALUES ($1, 'mine')`, []any{owner.UserID}, true},
		{"a row of a global table", `INSERT INTO zz_planted_global (note) VALUES ('any')`, nil, true},
		{"a delete of the organization's row", `DELETE FROM zz_planted WHERE organization_id = $1`, []any{org}, true},
	} {
		exec(step.query, step.args...)
		after := authzDigestOn(t, tx, query, scope)
		if seen := after != digest; seen != step.seen {
			t.Errorf("%s: digest changed %v, want %v:\nbefore %s\nafter  %s", step.name, seen, step.seen, digest, after)
		}
		digest = after
	}
}
