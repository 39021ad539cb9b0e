package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

var invitationMails = []string{"member.invited", "invitation.resent"}

// newOrg inserts an organization with an owner and returns both ids.
func newOrg(t *testing.T) (org, user uuid.UUID) {
	t.Helper()
	err := db.WithTx(context.Background(), database.DB, func(tx *sqlx.Tx) error {
		if err := tx.Get(&user, `INSERT INTO users (email, name, password_hash) VALUES ($1, 'U', '$argon2id$x') RETURNING id`,
			uuid.NewString()+"@example.test"); err != nil {
			return err
		}
		if err := tx.Get(&org, `INSERT INTO organizations (name, slug) VALUES ('O', $1) RETURNING id`, "o-"+uuid.NewString()[:8]); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, user)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return org, user
}

func TestCountSinceCountsTheWindowOfOneOrganization(t *testing.T) {
	ctx := context.Background()
	org, user := newOrg(t)
	other, _ := newOrg(t)
	now := time.Now().Truncate(time.Microsecond)
	s := NewService(database.DB)
	record := func(org uuid.UUID, action, email string, at time.Time) {
		t.Helper()
		if err := s.Record(ctx, database.DB, Entry{OrganizationID: org, ActorID: user, Action: action,
			Metadata: map[string]any{"email": email}, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	record(org, "member.invited", "a@example.test", now.Add(-time.Hour)) // just outside the window
	record(org, "member.invited", "a@example.test", now.Add(-59*time.Minute))
	record(org, "invitation.resent", "a@example.test", now)
	record(org, "member.invited", "b@example.test", now)
	record(org, "invitation.revoked", "a@example.test", now) // another action
	record(other, "member.invited", "a@example.test", now)   // another organization

	all, toA, err := s.CountSince(ctx, database.DB, org, invitationMails, now.Add(-time.Hour), "email", "a@example.test")
	if err != nil || all != 3 || toA != 2 {
		t.Fatalf("CountSince = %d, %d, %v; want 3 in the window, 2 to a@", all, toA, err)
	}
}

// TestInvitationMailCountUsesItsIndex: the count reads the partial index of
// invitation mails (migrations/00005), not the organization's whole log.
func TestInvitationMailCountUsesItsIndex(t *testing.T) {
	ctx := context.Background()
	org, _ := newOrg(t)
	err := db.WithTx(ctx, database.DB, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		var plan []string
		if err := tx.SelectContext(ctx, &plan, "EXPLAIN "+countSinceSQL,
			org, pq.Array(invitationMails), time.Now().Add(-time.Hour), "email", "a@example.test"); err != nil {
			return err
		}
		if p := strings.Join(plan, "\n"); !strings.Contains(p, "audit_events_invitation_mail_idx") {
			t.Errorf("the count does not use audit_events_invitation_mail_idx:\n%s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
