// Package db opens the PostgreSQL pool and runs transactions. It holds no business rules.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Open connects to url and checks the connection.
func Open(ctx context.Context, url string) (*sqlx.DB, error) {
	d, err := sqlx.Open(DriverName, url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	d.SetMaxOpenConns(20)
	d.SetMaxIdleConns(20)
	d.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.PingContext(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
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
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

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
