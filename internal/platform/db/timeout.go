package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/reqmeta"
)

// TimeoutSetting is the environment variable of the pool's statement timeout
// (Options.StatementTimeout): a Go duration, DefaultStatementTimeout when
// unset, 0 for none.
const TimeoutSetting = "DATABASE_STATEMENT_TIMEOUT"

// DefaultStatementTimeout is the server pool's statement timeout when
// TimeoutSetting is unset.
const DefaultStatementTimeout = 5 * time.Second

// MaxStatementTimeout is the longest statement timeout TimeoutSetting takes: a
// request never runs longer (app.RequestTimeout), so a longer one would never
// fire for a request.
const MaxStatementTimeout = 30 * time.Second

// Unbounded, as Options.StatementTimeout, starts every connection with no
// statement timeout at all (statement_timeout=0), whatever the role's or the
// database's default: for migrations and maintenance commands.
const Unbounded time.Duration = -1

// ParseTimeout reads TimeoutSetting's value ("" is DefaultStatementTimeout;
// "0" is none: no statement_timeout is sent, the server's default applies).
func ParseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultStatementTimeout, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || (d > 0 && d < time.Millisecond) || d > MaxStatementTimeout {
		return 0, fmt.Errorf("%s: want 0 (none) or a duration from 1ms to %s such as 5s or 800ms, got %q", TimeoutSetting, MaxStatementTimeout, v)
	}
	return d, nil
}

// startupTimeout is the statement_timeout startup parameter for o ("" for none).
func (o Options) startupTimeout() string {
	switch {
	case o.StatementTimeout == Unbounded:
		return "0"
	case o.StatementTimeout > 0:
		return strconv.FormatInt(max(o.StatementTimeout.Milliseconds(), 1), 10)
	}
	return ""
}

// openHint explains a pooler's refusal of the statement_timeout startup
// parameter (PgBouncer: "unsupported startup parameter: statement_timeout").
func openHint(err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) && strings.Contains(pe.Message, "unsupported startup parameter") && strings.Contains(pe.Message, "statement_timeout") {
		return fmt.Errorf("%w (a connection pooler refuses the statement timeout the server sends at connection start: "+
			"behind PgBouncer, list statement_timeout in its ignore_startup_parameters and set the timeout on the server "+
			"connections it opens, see docs/operations.md, \"PgBouncer\")", err)
	}
	return err
}

// QueryCanceled is PostgreSQL's SQLSTATE for a cancelled statement: at the
// statement timeout, or on a cancel request (lib/pq sends one when a
// statement's context ends: "canceling statement due to user request").
const QueryCanceled = "57014"

// mappedError is a driver error that a client may see: the client-safe
// error (TIMEOUT, QUOTA_EXCEEDED) and the driver's, both in its chain (so
// Constraint and IsViolation still read the driver's).
type mappedError struct {
	app *apperr.Error
	pq  error
}

func (e *mappedError) Error() string   { return e.pq.Error() }
func (e *mappedError) Unwrap() []error { return []error{e.app, e.pq} }

// TimeoutMessage is what a client reads of a statement timeout.
const TimeoutMessage = "the request took too long in the database: try again, or ask for less at once"

// mapError is where the driver's errors that a client may see are mapped,
// once, for every statement of the pool (queries, execs, the rows they
// stream, commits):
//   - a PostgreSQL error 57014 "canceling statement due to statement timeout"
//     becomes, in the error's chain, an apperr.Error coded TIMEOUT, and counts
//     in the request's metadata (reqmeta.Meta.StatementTimeouts); a
//     cancellation by the context ("due to user request") stays as it is.
//     PostgreSQL must write its messages in English (lc_messages, C or en_*:
//     its default);
//   - an organization quota trigger's refusal (QuotaConstraint) becomes
//     QUOTA_EXCEEDED (quotaError).
//
// Every other error is returned as it is.
func mapError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Code == QueryCanceled && strings.Contains(pe.Message, "statement timeout"):
		reqmeta.From(ctx).StatementTimedOut()
		return &mappedError{app: apperr.New(apperr.Timeout, TimeoutMessage), pq: err}
	case pe.Code == CheckViolation && pe.Constraint == QuotaConstraint:
		if q := quotaError(pe); q != nil {
			return &mappedError{app: q, pq: err}
		}
	}
	return err
}

// IsStatementTimeout reports whether err is a statement PostgreSQL cancelled
// at the statement timeout.
func IsStatementTimeout(err error) bool {
	var me *mappedError
	return errors.As(err, &me) && me.app.Code == apperr.Timeout
}

// mappedRows maps the errors of a query's rows (mapError): a statement timeout may come
// after the first rows (or, for a statement sent with arguments, after its
// columns' description and before any row).
type mappedRows struct {
	driver.Rows
	ctx context.Context
}

func (r *mappedRows) Next(dest []driver.Value) error { return mapError(r.ctx, r.Rows.Next(dest)) }

func (r *mappedRows) HasNextResultSet() bool {
	n, ok := r.Rows.(driver.RowsNextResultSet)
	return ok && n.HasNextResultSet()
}

func (r *mappedRows) NextResultSet() error {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return mapError(r.ctx, n.NextResultSet())
	}
	return errors.New("no next result set")
}

func (r *mappedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

// SessionStatementTimeout is the statement_timeout a connection of d's pool
// has (0: none): what the pool's statement timeout really is, whichever set
// it (the startup parameter sent when the pool talks to PostgreSQL itself,
// behind PgBouncer its connect_query or the role's or database's setting).
func SessionStatementTimeout(ctx context.Context, d sqlx.QueryerContext) (time.Duration, error) {
	var ms int64
	if err := sqlx.GetContext(ctx, d, &ms, `SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'`); err != nil {
		return 0, fmt.Errorf("read statement_timeout: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// WithoutStatementTimeout lifts the statement timeout for the rest of tx (SET
// LOCAL: it ends with the transaction, so it holds behind PgBouncer in
// transaction mode too): for maintenance work whose statements must not be
// cut by the requests' bound (the mail worker's recording of sends already
// made, the audit sealer's catching up on a backlog).
func WithoutStatementTimeout(ctx context.Context, tx sqlx.ExecerContext) error {
	if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		return fmt.Errorf("lift statement timeout: %w", err)
	}
	return nil
}
