package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/platform/reqmeta"
)

// TestStatementTimeoutIsTimeout: a statement that runs past the pool's
// statement timeout fails with TIMEOUT (the driver's 57014 still in the
// chain) and counts in the request's metadata, whether it fails before its
// rows or while they stream, outside or inside a transaction; the
// connection stays usable and is left in no transaction. A statement whose
// context ends is cancelled as before ("due to user request"): no TIMEOUT.
func TestStatementTimeoutIsTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := dbtest.NewWith(ctx, dbtest.Options{StatementTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	d.DB.SetMaxOpenConns(1) // every statement below on the one connection
	if got, err := db.SessionStatementTimeout(ctx, d.DB); err != nil || got != 100*time.Millisecond {
		t.Fatalf("statement_timeout = %v, %v; want 100ms", got, err)
	}

	wantTimeout := func(t *testing.T, what string, err error) {
		t.Helper()
		e, ok := apperr.As(err)
		if !ok || e.Code != apperr.Timeout || e.Message != db.TimeoutMessage || !db.IsStatementTimeout(err) || !db.IsViolation(err, db.QueryCanceled, "") {
			t.Fatalf("%s: %v (%T), want TIMEOUT with SQLSTATE 57014 in its chain", what, err, err)
		}
	}
	for _, c := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"simple query", func(ctx context.Context) error {
			_, err := d.DB.ExecContext(ctx, `SELECT pg_sleep(1)`)
			return err
		}},
		{"with arguments", func(ctx context.Context) error {
			var v []int
			return d.DB.SelectContext(ctx, &v, `SELECT 1 FROM pg_sleep($1::float8)`, 1)
		}},
		{"while rows stream", func(ctx context.Context) error {
			var v []int
			return d.DB.SelectContext(ctx, &v, `SELECT g FROM generate_series(1, $1::int) g WHERE g < 3 OR pg_sleep(1) IS NULL`, 5)
		}},
		{"in a transaction", func(ctx context.Context) error {
			return db.WithTx(ctx, d.DB, func(tx *sqlx.Tx) error {
				if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `SELECT pg_sleep($1::float8)`, 1)
				return err
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			meta := &reqmeta.Meta{}
			wantTimeout(t, c.name, c.run(reqmeta.With(ctx, meta)))
			if n := meta.StatementTimeouts(); n != 1 {
				t.Errorf("StatementTimeouts() = %d, want 1", n)
			}
			var status string
			if err := d.DB.GetContext(ctx, &status, `SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()`); err != nil {
				t.Fatalf("the connection after the timeout: %v", err)
			}
			if status != "active" {
				t.Fatalf("the connection after the timeout is %q", status)
			}
		})
	}

	t.Run("a transaction without the timeout", func(t *testing.T) {
		err := db.WithTx(ctx, d.DB, func(tx *sqlx.Tx) error {
			if err := db.WithoutStatementTimeout(ctx, tx); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `SELECT pg_sleep(0.2)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.SessionStatementTimeout(ctx, d.DB); err != nil || got != 100*time.Millisecond {
			t.Fatalf("statement_timeout after the transaction = %v, %v; want 100ms again", got, err)
		}
	})

	t.Run("context cancellation stays itself", func(t *testing.T) {
		p, err := db.Open(ctx, d.URL, db.Options{StatementTimeout: db.Unbounded})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer ccancel()
		meta := &reqmeta.Meta{}
		_, err = p.ExecContext(reqmeta.With(cctx, meta), `SELECT pg_sleep(1)`)
		if err == nil || db.IsStatementTimeout(err) || meta.StatementTimeouts() != 0 {
			t.Fatalf("cancelled by its context: %v, %d timeouts; want the cancellation, no TIMEOUT", err, meta.StatementTimeouts())
		}
		if _, ok := apperr.As(err); ok && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled by its context: %v is client-safe", err)
		}
	})
}
