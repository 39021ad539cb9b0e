package app_test

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/platform/metrics"
)

// testStatementTimeout is the statement timeout of TestStatementTimeout's
// server: short, yet far above what its other statements take on a busy
// machine.
const testStatementTimeout = 500 * time.Millisecond

// TestStatementTimeout: a statement made slow on purpose (it waits for a lock
// another session holds; a lock wait counts toward statement_timeout) is cut
// by PostgreSQL at the server's statement timeout, and the request answers
// TIMEOUT: a list read outside any transaction, the @hasRole membership
// loader, and a mutation inside the tenant gate, which writes nothing. Each
// logs its access line at WARN with the operation's name, its request id and
// statement_timeouts=1, and counts in tenantgraph_statement_timeouts_total.
// Afterwards the pool's connections are clean: no transaction left aborted
// in pg_stat_activity, and the same requests succeed. Under make
// test-pgbouncer the pool goes through PgBouncer, which drops the startup
// parameter: the timeout is then the database's own setting, as an operator
// sets it (dbtest.Options.StatementTimeout).
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := dbtest.NewWith(ctx, dbtest.Options{StatementTimeout: testStatementTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	admin, err := db.Open(ctx, d.DirectURL, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	reg := metrics.New()
	s := apitest.Start(t, d, apitest.StartOptions{Metrics: reg})

	if got, err := db.SessionStatementTimeout(ctx, d.DB); err != nil || got != testStatementTimeout {
		t.Fatalf("the pool's statement_timeout = %v, %v; want %v", got, err, testStatementTimeout)
	}

	owner := s.RegisterVerified(t, "timeout")
	org := s.CreateOrg(t, owner, "Timeout Org")
	vars := map[string]any{"o": org}
	const list = `query TimeoutCustomers($o: ID!) { customers(orgId: $o, first: 10) { edges { node { name } } } }`
	const create = `mutation TimeoutCreate($o: ID!) { createCustomer(orgId: $o, input: {name: "Stuck"}) { id } }`
	const members = `query TimeoutMembers($o: ID!) { organization(orgId: $o) { name } }`
	apitest.MustOK(t, s.Post(t, owner.AccessToken, create, vars))

	var audits int
	if err := admin.GetContext(ctx, &audits, `SELECT count(*) FROM audit_events WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, table, query, op, typ string
	}{
		{"list outside a transaction", "customers", list, "TimeoutCustomers", "query"},
		{"membership loader of @hasRole", "organization_members", members, "TimeoutMembers", "query"},
		{"mutation in the tenant gate", "customers", create, "TimeoutCreate", "mutation"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := lockTable(t, admin, c.table)
			id := "timeout-test-" + uuid.NewString()[:8]
			start := time.Now()
			r := s.PostHeaders(t, http.Header{"Authorization": {"Bearer " + owner.AccessToken}, "X-Request-Id": {id}}, c.query, vars)
			took := time.Since(start)
			release()
			if r.Code() != "TIMEOUT" || r.Errors[0].Message != db.TimeoutMessage {
				t.Fatalf("with %s locked: %s, want TIMEOUT", c.table, r.Raw)
			}
			if took < testStatementTimeout {
				t.Errorf("answered in %v, before the statement timeout (%v)", took, testStatementTimeout)
			}
			line := regexp.MustCompile(`(?m)^.*level=WARN msg=request request_id=` + id + ` .*$`).FindString(s.Logs())
			if !strings.Contains(line, "operation="+c.op+" ") || !strings.Contains(line, "statement_timeouts=1") {
				t.Errorf("no WARN access line with operation=%s and statement_timeouts=1 for request %s: %q", c.op, id, line)
			}
			samples := scrape(t, metrics.Handler(reg))
			if n := value(t, samples, "tenantgraph_statement_timeouts_total", "type="+c.typ); int(n) != map[bool]int{true: i + 1, false: 1}[c.typ == "query"] {
				t.Errorf("tenantgraph_statement_timeouts_total{type=%q} = %v", c.typ, n)
			}
			if n := value(t, samples, "tenantgraph_graphql_requests_total", "operation="+c.op, "type="+c.typ, "code=TIMEOUT"); n != 1 {
				t.Errorf("tenantgraph_graphql_requests_total{operation=%q,code=TIMEOUT} = %v, want 1", c.op, n)
			}
			// Clean: no transaction of the server's left aborted (the mail
			// worker's and the sealer's come and go: not those), and the same
			// request now succeeds.
			var stuck []string
			if err := admin.SelectContext(ctx, &stuck, `SELECT state || ': ' || query FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'idle in transaction (aborted)'`); err != nil {
				t.Fatal(err)
			}
			if len(stuck) != 0 {
				t.Errorf("sessions left in an aborted transaction after the timeout: %q", stuck)
			}
			for range 3 {
				apitest.MustOK(t, s.Post(t, owner.AccessToken, c.query, vars))
			}
		})
	}
	// The timed-out mutation wrote nothing: its customer and audit event are
	// the three successful retries' only.
	var stuck, after int
	if err := admin.GetContext(ctx, &stuck, `SELECT count(*) FROM customers WHERE organization_id = $1 AND name = 'Stuck'`, org); err != nil {
		t.Fatal(err)
	}
	if err := admin.GetContext(ctx, &after, `SELECT count(*) FROM audit_events WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if stuck != 1+3 || after != audits+3 {
		t.Errorf("customers named Stuck: %d, want 4; audit events %d → %d, want +3", stuck, audits, after)
	}
	// The code is documented where clients read the codes.
	for _, f := range []string{"../../schema.graphqls", "../../docs/api.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "TIMEOUT") {
			t.Errorf("%s does not list TIMEOUT", f)
		}
	}
}

// lockTable holds table in ACCESS EXCLUSIVE mode in a transaction of its own,
// straight on PostgreSQL, until release: every statement reading or writing
// the table waits for it.
func lockTable(t *testing.T, admin *sqlx.DB, table string) (release func()) {
	t.Helper()
	tx, err := admin.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`LOCK TABLE ` + table + ` IN ACCESS EXCLUSIVE MODE`); err != nil {
		tx.Rollback() //nolint:errcheck
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}
