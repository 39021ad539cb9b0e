package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/dbtest"
)

// TestAuditVerifyCommand: `tenantgraph audit verify` passes on sealed chains
// and, once an event was changed in the database, names its organization and
// event and fails (non-zero exit); --org checks one organization.
func TestAuditVerifyCommand(t *testing.T) {
	t.Setenv("DATABASE_URL", database.URL)
	tx := database.DB.MustBegin()
	org := dbtest.NewOrgTx(t, tx)
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, dbtest.NewUser(t, tx))
	var victim uuid.UUID
	for i := range 3 {
		var id uuid.UUID
		if err := tx.Get(&id, `INSERT INTO audit_events (organization_id, action) VALUES ($1, 'test.event') RETURNING id`, org); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			victim = id
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	dbtest.Exec(t, database.DB, `SELECT audit_seal(organization_id) FROM (SELECT DISTINCT organization_id FROM audit_unsealed) u`)

	var out bytes.Buffer
	if err := auditCmd([]string{"verify"}, &out); err != nil || !strings.Contains(out.String(), "0 broken") {
		t.Fatalf("verify on sealed chains: %v\n%s", err, out.String())
	}
	tamper := database.DB.MustBegin()
	defer tamper.Rollback() //nolint:errcheck
	dbtest.Exec(t, tamper, `SET LOCAL session_replication_role = replica`)
	dbtest.Exec(t, tamper, `UPDATE audit_events SET action = 'test.other' WHERE organization_id = $1 AND id = $2`, org, victim)
	if err := tamper.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify"}, {"verify", "--org", org.String()}} {
		out.Reset()
		err := auditCmd(args, &out)
		if !errors.Is(err, errChainBroken) || !strings.Contains(out.String(), "BROKEN "+org.String()+": link 2 (event "+victim.String()+")") {
			t.Errorf("%v after tampering: %v\n%s", args, err, out.String())
		}
	}
	if err := auditCmd([]string{"check"}, &out); err == nil {
		t.Error("an unknown subcommand passed")
	}
}
