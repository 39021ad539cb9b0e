// Package dbtest gives each test package its own PostgreSQL database, cloned from a
// migrated template, on the server named by TEST_DATABASE_URL.
//
// With TEST_PGBOUNCER_URL set too (make test-pgbouncer), the package's pool and
// URL go through that PgBouncer (a transaction-mode pooler whose wildcard
// database entry reaches every database of TEST_DATABASE_URL's server), as a
// server behind PgBouncer's do; DirectURL and the administrative work (CREATE
// DATABASE, the template's lock and migrations) stay on TEST_DATABASE_URL.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/db"
)

const templateName = "tenantgraph_template"

// lockKey serialises template (re)builds across test packages running in parallel.
const lockKey = 7262_0001

// Database is one test package's database.
type Database struct {
	// URL is the database as the server's pool sees it: through PgBouncer under
	// make test-pgbouncer, else the same as DirectURL.
	URL string
	// DirectURL reaches PostgreSQL itself: for what needs a session (LISTEN,
	// session-level locks or settings, pg_prepared_statements).
	DirectURL string
	DB        *sqlx.DB // a pool on URL
	name      string
	srv       string
}

// PgBouncerSetting names the variable that routes the test pools through PgBouncer.
const PgBouncerSetting = "TEST_PGBOUNCER_URL"

// Options shape a database of NewWith.
type Options struct {
	// StatementTimeout bounds the statements of the database's pool
	// (db.Options.StatementTimeout). Straight to PostgreSQL the pool sends it
	// at connection start; through PgBouncer, which drops that, it is also
	// the database's own setting (ALTER DATABASE … SET statement_timeout), as
	// an operator sets it behind PgBouncer (docs/operations.md, "PgBouncer").
	StatementTimeout time.Duration
}

// New creates a fresh database for one test package from the migrated template.
// It fails when TEST_DATABASE_URL is not set: the tests need a real PostgreSQL (run `make test`).
func New(ctx context.Context) (*Database, error) { return NewWith(ctx, Options{}) }

// NewWith is New with options.
func NewWith(ctx context.Context, o Options) (*Database, error) {
	srv := os.Getenv("TEST_DATABASE_URL")
	if srv == "" {
		return nil, fmt.Errorf("TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL")
	}
	admin, err := db.Open(ctx, srv, db.Options{})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	conn, err := admin.Connx(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return nil, fmt.Errorf("lock template: %w", err)
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockKey) //nolint:errcheck

	var exists bool
	if err := conn.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, templateName); err != nil {
		return nil, err
	}
	if !exists {
		if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+templateName); err != nil {
			return nil, fmt.Errorf("create template: %w", err)
		}
	}
	// Bring the template up to date (a no-op when it already is).
	tpl, err := db.Open(ctx, withDB(srv, templateName), db.Options{})
	if err != nil {
		return nil, err
	}
	err = db.MigrateUp(ctx, tpl.DB)
	tpl.Close()
	if err != nil {
		return nil, err
	}

	name := "test_" + randHex(6)
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+name+` TEMPLATE `+templateName); err != nil {
		return nil, fmt.Errorf("create test database: %w", err)
	}
	direct := withDB(srv, name)
	u := direct
	if b := os.Getenv(PgBouncerSetting); b != "" {
		u = withDB(b, name)
		if o.StatementTimeout > 0 {
			if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER DATABASE %s SET statement_timeout = %d`,
				name, o.StatementTimeout.Milliseconds())); err != nil {
				return nil, fmt.Errorf("set the test database's statement timeout: %w", err)
			}
		}
	}
	// The suite runs both ways: make test runs it again with
	// DATABASE_PREPARED_STATEMENTS=off, as a server behind PgBouncer would.
	opts, err := db.ParsePrepared(os.Getenv(db.PreparedSetting))
	if err != nil {
		return nil, err
	}
	opts.StatementTimeout = o.StatementTimeout
	d, err := db.Open(ctx, u, opts)
	if err != nil {
		return nil, err
	}
	return &Database{URL: u, DirectURL: direct, DB: d, name: name, srv: srv}, nil
}

// Close drops the database.
func (d *Database) Close() {
	d.DB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := db.Open(ctx, d.srv, db.Options{})
	if err != nil {
		return
	}
	defer admin.Close()
	admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+d.name+` WITH (FORCE)`) //nolint:errcheck
}

// Main runs a test package's tests with its own database, exposed through *target.
func Main(m *testing.M, target **Database) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	d, err := New(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		os.Exit(1)
	}
	*target = d
	code := m.Run()
	d.Close()
	os.Exit(code)
}

func withDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// key=value form
		return strings.TrimSpace(raw) + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck
	return hex.EncodeToString(b)
}

// Fixtures for the database tests that bypass the services (plain SQL).

// Exec runs one statement on q, failing the test on error.
func Exec(t testing.TB, q sqlx.ExecerContext, query string, args ...any) {
	t.Helper()
	if _, err := q.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// NewUser inserts a verified user with a unique email and returns its id.
func NewUser(t testing.TB, q sqlx.QueryerContext) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	email := "u-" + strings.ReplaceAll(uuid.NewString(), "-", "") + "@x.test"
	if err := sqlx.GetContext(context.Background(), q, &id, `INSERT INTO users (email, name, password_hash, email_verified_at)
		VALUES ($1, 'Test User', '$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA', now()) RETURNING id`, email); err != nil {
		t.Fatal(err)
	}
	return id
}

// NewOrgTx inserts an organization with a unique slug in tx and returns its id.
func NewOrgTx(t testing.TB, tx *sqlx.Tx) uuid.UUID {
	t.Helper()
	var org uuid.UUID
	slug := "org-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	if err := tx.Get(&org, `INSERT INTO organizations (name, slug) VALUES ('Test Org', $1) RETURNING id`, slug); err != nil {
		t.Fatal(err)
	}
	return org
}

// WantViolation fails t unless err is a PostgreSQL error with SQLSTATE code on
// constraint (any constraint when empty): what a write that bypasses the
// services must meet.
func WantViolation(t testing.TB, err error, what, code, constraint string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want SQLSTATE %s on %q", what, code, constraint)
		return
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		t.Errorf("%s: error %v (%T) is not a PostgreSQL error", what, err, err)
		return
	}
	if string(pe.Code) != code || (constraint != "" && pe.Constraint != constraint) {
		t.Errorf("%s: got SQLSTATE %s constraint %q (%s), want %s %q", what, pe.Code, pe.Constraint, pe.Message, code, constraint)
	}
}
