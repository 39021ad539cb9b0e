// Package db opens the PostgreSQL pool and runs transactions. It holds no business rules.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
)

// Options tune the pool.
type Options struct {
	// NoPrepare sends each statement unnamed, parsed and planned on every call,
	// instead of preparing it once per connection: for connection poolers that
	// cannot keep prepared statements (PgBouncer before 1.21 in transaction mode).
	NoPrepare bool
	// StatementTimeout bounds each statement of the pool's connections: sent
	// as the statement_timeout startup parameter of every connection, so it
	// costs no statement (PostgreSQL cancels a statement that runs longer,
	// lock waits included, with TIMEOUT: see mapError). 0 sends none (the
	// server's default applies: behind PgBouncer, which drops the parameter,
	// the one set there); Unbounded sends 0, no timeout (migrations). In whole
	// milliseconds.
	StatementTimeout time.Duration
	// MaxConns is the most connections the pool opens (DefaultMaxConns when 0).
	MaxConns int
}

// DefaultMaxConns is the pool's size unless MaxConnsSetting says otherwise.
const DefaultMaxConns = 20

// MaxConnsSetting is the environment variable that sizes the pool.
const MaxConnsSetting = "DATABASE_MAX_CONNECTIONS"

// ParseMaxConns reads MaxConnsSetting's value ("" is DefaultMaxConns): 1 to 1000.
func ParseMaxConns(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultMaxConns, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("%s: want a whole number from 1 to 1000, got %q", MaxConnsSetting, v)
	}
	return n, nil
}

// PreparedSetting is the environment variable that switches prepared
// statements off ("off"); "on", the default, keeps them.
const PreparedSetting = "DATABASE_PREPARED_STATEMENTS"

// ParsePrepared reads PreparedSetting's value ("" is on).
func ParsePrepared(v string) (Options, error) {
	switch v {
	case "", "on":
		return Options{}, nil
	case "off":
		return Options{NoPrepare: true}, nil
	}
	return Options{}, fmt.Errorf("%s must be on or off, got %q", PreparedSetting, v)
}

// Open connects to url and checks the connection.
func Open(ctx context.Context, url string, o Options) (*sqlx.DB, error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// An unnamed statement (every statement with NoPrepare, and CustomPlan's)
	// goes in one round trip, Parse to Sync, instead of Parse/Describe/Sync and
	// then Bind/Execute/Sync: between those two Syncs, outside a transaction,
	// PgBouncer in transaction mode may hand the server connection to another
	// client, and the Bind then finds no statement (docs/operations.md, "PgBouncer"). The
	// price: []byte arguments go in binary format, right for bytea only (send
	// JSON for a jsonb column as a string).
	cfg.BinaryParameters = true
	// Results in text: lib/pq asks a prepared statement's uuid and integer
	// columns in binary, then turns each uuid into a new 36-byte text that
	// uuid.UUID.Scan copies into a string again (4 allocations per uuid, 2
	// in text): about 1,000 of a customers page's 21,600.
	cfg.DisablePreparedBinaryResult = true
	if v := o.startupTimeout(); v != "" {
		if cfg.Runtime == nil {
			cfg.Runtime = map[string]string{}
		}
		cfg.Runtime["statement_timeout"] = v
	}
	pc, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	d := sqlx.NewDb(sql.OpenDB(connector{pq: pc, prepare: !o.NoPrepare}), DriverName)
	n := o.MaxConns
	if n <= 0 {
		n = DefaultMaxConns
	}
	d.SetMaxOpenConns(n)
	d.SetMaxIdleConns(n)
	d.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.PingContext(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("connect to database: %w", openHint(err))
	}
	return d, nil
}

// WithTx runs fn in a transaction, committing when fn returns nil and rolling back otherwise.
func WithTx(ctx context.Context, d *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	tx, err := d.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	afterCommit.Store(tx, new([]func()))
	defer afterCommit.Delete(tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if hooks, ok := afterCommit.LoadAndDelete(tx); ok {
		for _, h := range *hooks.(*[]func()) {
			h()
		}
	}
	return nil
}

// afterCommit holds the hooks of the transactions WithTx runs (*sqlx.Tx ->
// *[]func()) while they run; a transaction's own goroutine adds to its list.
var afterCommit sync.Map

// AfterCommit runs fn once tx, a transaction of WithTx (or RetryTx), has
// committed; never when it rolls back. fn must be quick and must not block:
// it runs on the committing goroutine (for example, waking a worker). On a
// transaction begun elsewhere it is never called.
func AfterCommit(tx *sqlx.Tx, fn func()) {
	if v, ok := afterCommit.Load(tx); ok {
		hooks := v.(*[]func())
		*hooks = append(*hooks, fn)
	}
}

// Retry bounds RetryTx: how many times in all a transaction runs, and the
// longest pause before the first rerun (doubled before each next one; each
// pause is drawn at random up to it, so that the transactions that collided
// do not collide again).
var Retry = struct {
	Attempts int
	Pause    time.Duration
}{Attempts: 4, Pause: 20 * time.Millisecond}

// RetryTx runs fn in a transaction like WithTx and, when that transaction fails
// with a serialization failure or a deadlock (PostgreSQL rolled it back: none
// of its writes remain), runs fn again in a new one, up to Retry.Attempts
// times in all. fn must be safe to run again: its only effects are its
// transaction's writes and what it returns. When every attempt collided, the
// answer is CONFLICT (the client may try again); any other error is returned as is.
func RetryTx(ctx context.Context, d *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	pause := Retry.Pause
	for attempt := 1; ; attempt++ {
		err := WithTx(ctx, d, fn)
		if err == nil || !Retryable(err) {
			return err
		}
		if attempt >= Retry.Attempts {
			return apperr.New(apperr.Conflict, "the change collided with concurrent changes %d times: try again", attempt)
		}
		t := time.NewTimer(rand.N(pause) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause *= 2
	}
}

// Retryable reports whether err is a serialization failure or a deadlock: the
// transaction was rolled back and may succeed when run again.
func Retryable(err error) bool {
	return IsViolation(err, SerializationFail, "") || IsViolation(err, DeadlockDetected, "")
}

// QuotaConstraint is the constraint name of the organization quota triggers'
// refusals (migrations/00021_organization_quotas.sql): SQLSTATE 23514, DETAIL
// "<limit> <max>", a client-safe message.
const QuotaConstraint = "organization_quota"

// quotaError is a quota trigger's refusal as QUOTA_EXCEEDED, with
// extensions.limit (the limit's API name, "seats") and extensions.max; nil
// when its DETAIL is not "<limit> <max>".
func quotaError(pe *pq.Error) *apperr.Error {
	limit, n, _ := strings.Cut(pe.Detail, " ")
	max, err := strconv.Atoi(n)
	if err != nil || limit == "" {
		return nil
	}
	return &apperr.Error{Code: apperr.QuotaExceeded, Message: pe.Message,
		Limit: limit, Extensions: map[string]any{"limit": limit, "max": max}}
}

// Constraint returns the name of the constraint a PostgreSQL error is about
// ("" for none).
func Constraint(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Constraint
	}
	return ""
}

// LikeContains is the LIKE/ILIKE pattern that matches text containing s
// literally (%, _ and the escape character \ in s match themselves).
func LikeContains(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// CountUpTo counts the rows of `SELECT 1 FROM <from>` (from: the tables and
// their WHERE, with args as $1…), but at most limit of them: the subquery
// stops after limit rows, so a count that would reach millions reads limit
// rows at most (page.Connection.Capped gives limit = page.CountCap + 1). With
// orderBy (a list's ORDER BY, or "") the rows are taken in that order: the
// count then walks the list's index as its page does, instead of a sequential
// scan that the planner expects to find limit matches early but that may
// first read every other organization's rows stored before the ones it
// counts. It is sent unprepared (CustomPlan), planned for its values.
func CountUpTo(ctx context.Context, q sqlx.QueryerContext, from, orderBy string, limit int, args ...any) (int, error) {
	args = append(args, limit)
	if orderBy != "" {
		orderBy = " ORDER BY " + orderBy
	}
	var n int
	err := sqlx.GetContext(ctx, q, &n, fmt.Sprintf("%sSELECT count(*) FROM (SELECT 1 FROM %s%s LIMIT $%d) capped", CustomPlan, from, orderBy, len(args)), args...)
	return n, err
}

// HasTrigram reports whether pg_trgm can narrow an ILIKE '%term%' by term
// with a trigram index: a term of fewer than 3 characters has no trigram, and
// the index could only return every row of the organization.
func HasTrigram(term string) bool { return utf8.RuneCountInString(term) >= 3 }

// ShortTerm reports whether search is a term without a trigram: a list's page
// then walks its ordering's index and its capped count follows that order
// (the customers' and products' stores).
func ShortTerm(search *string) bool { return search != nil && !HasTrigram(*search) }

// OrgParam is how a list's statements write the organization's parameter $1
// for search: Unestimated for a ShortTerm, else "$1".
func OrgParam(search *string) string {
	if ShortTerm(search) {
		return Unestimated("$1", "uuid")
	}
	return "$1"
}

// Unestimated is the parameter p (e.g. "$1") of SQL type typ as a value the
// planner cannot see when it plans, `(SELECT $1::uuid)`: a condition on it is
// estimated from the column's average frequency, not from its statistics for
// that value. The page and the capped count of a search term without a
// trigram use it for the organization: an organization that the statistics do not know yet (a new
// tenant who has just imported 30,000 customers) is otherwise estimated at one
// row, and reading and sorting all its matches looks cheaper than the walk of
// the ordering's index that stops after one page. Terms with trigrams keep the
// organization's own estimate: there it weighs the trigram index against the
// walk, and the average misjudges a large organization the other way (a term
// matching 8,600 of its 100,000 customers walked all of them: 150 ms instead
// of 16).
func Unestimated(p, typ string) string { return "(SELECT " + p + "::" + typ + ")" }

// SQLSTATE codes the stores map to domain errors.
const (
	UniqueViolation     = "23505"
	ForeignKeyViolation = "23503"
	CheckViolation      = "23514"
	SerializationFail   = "40001"
	DeadlockDetected    = "40P01"
)

// IsViolation reports whether err is a PostgreSQL error with the given SQLSTATE and,
// when constraint is not empty, on that constraint.
func IsViolation(err error, code, constraint string) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	return string(pe.Code) == code && (constraint == "" || pe.Constraint == constraint)
}

// GetOrNil runs a query for at most one row and scans it into a new T; no row
// is (nil, nil).
func GetOrNil[T any](ctx context.Context, q sqlx.QueryerContext, query string, args ...any) (*T, error) {
	var v T
	err := sqlx.GetContext(ctx, q, &v, query, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// Pairs splits keys naming a row of an organization (organization, row) into
// the two arrays a batch lookup unnests: unnest($1::uuid[], $2::uuid[]).
func Pairs[K any](keys []K, pair func(K) (org, row uuid.UUID)) (orgs, rows any) {
	o, r := make([]uuid.UUID, len(keys)), make([]uuid.UUID, len(keys))
	for i, k := range keys {
		o[i], r[i] = pair(k)
	}
	return pq.Array(o), pq.Array(r)
}
