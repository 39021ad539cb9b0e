package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/dbtest"
)

// TestOrgLimitsCommand: `tenantgraph org limits set` changes the limits it
// is given and keeps the others, `get` reads them back with their use, and
// bad input changes nothing.
func TestOrgLimitsCommand(t *testing.T) {
	t.Setenv("DATABASE_URL", database.URL)
	tx := database.DB.MustBegin()
	org := dbtest.NewOrgTx(t, tx)
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, dbtest.NewUser(t, tx))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := orgCmd(args, &out)
		return out.String(), err
	}
	out, err := run("limits", "set", "--org", org.String(), "--seats", "25", "--orders-per-day", "100")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seats               1 of 25\n", "orders-per-day      0 of 100\n", "customers           0 of 250000\n", "notes-per-customer  1000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("set's answer lacks %q:\n%s", want, out)
		}
	}
	if got, err := run("limits", "get", "--org", org.String()); err != nil || got != out {
		t.Errorf("get: %v\n%s\nwant what set answered:\n%s", err, got, out)
	}
	for _, bad := range [][]string{
		{"limits", "set", "--org", org.String(), "--seats", "0"},
		{"limits", "set", "--org", org.String(), "--customers", "-1"},
		{"limits", "set", "--org", org.String(), "--seats", "many"},
		{"limits", "set", "--org", "nope", "--seats", "5"},
		{"limits", "set", "--org", uuid.NewString(), "--seats", "5"},
		{"limits", "get", "--org", org.String(), "--seats", "5"},
		{"limits", "show", "--org", org.String()},
		{"quotas"},
	} {
		if _, err := run(bad...); err == nil {
			t.Errorf("%v passed", bad)
		}
	}
	if got, _ := run("limits", "get", "--org", org.String()); got != out {
		t.Errorf("refused commands changed the limits:\n%s\nwant\n%s", got, out)
	}
}
