package db_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

func openBoth(t *testing.T) (prepared, unprepared *sqlx.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := dbtest.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	// Straight to PostgreSQL, even under make test-pgbouncer: these tests look at
	// one session's pg_prepared_statements through one *sql.Conn, which
	// PgBouncer in transaction mode does not tie to one server session (and the
	// prepared pool is what PgBouncer 1.18 cannot carry).
	if prepared, err = db.Open(ctx, d.DirectURL, db.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prepared.Close() })
	if unprepared, err = db.Open(ctx, d.DirectURL, db.Options{NoPrepare: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unprepared.Close() })
	return prepared, unprepared
}

// preparedOn lists the statements prepared in conn's session (a query without
// arguments: it goes as a simple query and is not prepared itself).
func preparedOn(t *testing.T, ctx context.Context, conn *sqlx.Conn) []string {
	t.Helper()
	var out []string
	if err := conn.SelectContext(ctx, &out, `SELECT statement FROM pg_prepared_statements ORDER BY prepare_time`); err != nil {
		t.Fatal(err)
	}
	return out
}

const probe = `SELECT count(*) FROM users WHERE email = $1`

// TestStatementsArePreparedOncePerConnection: with prepared statements on, a
// statement run three times on one connection is prepared there once and
// reused; with them off (PgBouncer's transaction mode), nothing stays prepared
// in the session; a statement marked db.CustomPlan is never prepared.
func TestStatementsArePreparedOncePerConnection(t *testing.T) {
	if os.Getenv(db.PreparedSetting) == "off" {
		t.Log("runs both ways whatever the suite's setting")
	}
	ctx := context.Background()
	prepared, unprepared := openBoth(t)
	for _, c := range []struct {
		name string
		d    *sqlx.DB
		want int
	}{{"prepared", prepared, 1}, {"unprepared", unprepared, 0}} {
		conn, err := c.d.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			var n int
			if err := conn.GetContext(ctx, &n, probe, "nobody@example.test"); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		// The same statement marked CustomPlan is never kept, whatever the setting.
		for range 6 {
			var n int
			if err := conn.GetContext(ctx, &n, db.CustomPlan+probe, "nobody@example.test"); err != nil {
				t.Fatalf("%s, custom plan: %v", c.name, err)
			}
		}
		got, custom := 0, 0
		for _, s := range preparedOn(t, ctx, conn) {
			switch s {
			case probe:
				got++
			case db.CustomPlan + probe:
				custom++
			}
		}
		conn.Close()
		if got != c.want || custom != 0 {
			t.Errorf("%s: the probe is prepared %d times in the session, want %d; marked CustomPlan, %d times, want 0",
				c.name, got, c.want, custom)
		}
	}
}

// TestStalePreparedStatementIsReplaced: a migration that changes a table under
// a prepared `SELECT *` (PostgreSQL: "cached plan must not change result type")
// costs no error outside a transaction (the statement is prepared again and the
// call retried), and inside one fails that transaction only: the next use works.
func TestStalePreparedStatementIsReplaced(t *testing.T) {
	ctx := context.Background()
	prepared, _ := openBoth(t)
	if _, err := prepared.ExecContext(ctx, `CREATE TABLE stale_probe (id int PRIMARY KEY, a text); INSERT INTO stale_probe VALUES (1, 'x')`); err != nil {
		t.Fatal(err)
	}
	conn, err := prepared.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func(q sqlx.QueryerContext) error {
		rows, err := q.QueryxContext(ctx, `SELECT * FROM stale_probe WHERE id = $1`, 1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if _, err := rows.SliceScan(); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := read(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := prepared.ExecContext(ctx, `ALTER TABLE stale_probe ADD COLUMN b text`); err != nil {
		t.Fatal(err)
	}
	if err := read(conn); err != nil {
		t.Fatalf("outside a transaction, after the change: %v", err)
	}

	if _, err := prepared.ExecContext(ctx, `ALTER TABLE stale_probe ADD COLUMN c text`); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := read(tx); err == nil {
		t.Log("the stale statement was not noticed inside the transaction (PostgreSQL re-planned it)")
	}
	tx.Rollback() //nolint:errcheck
	if err := read(conn); err != nil {
		t.Fatalf("after the failed transaction: %v", err)
	}
}
