package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// DriverName is lib/pq wrapped to count the statements each request sends.
const DriverName = "tenantgraph-postgres"

func init() {
	sql.Register(DriverName, countingDriver{})
	sqlx.BindDriver(DriverName, sqlx.DOLLAR)
}

// Counter counts the SQL statements sent on behalf of one context.
type Counter struct{ n atomic.Int64 }

// Load returns the count so far.
func (c *Counter) Load() int64 { return c.n.Load() }

type counterKey struct{}

// WithCounter returns ctx whose statements are counted in c.
func WithCounter(ctx context.Context, c *Counter) context.Context {
	return context.WithValue(ctx, counterKey{}, c)
}

// CounterFrom returns ctx's counter, if any.
func CounterFrom(ctx context.Context) *Counter {
	c, _ := ctx.Value(counterKey{}).(*Counter)
	return c
}

func count(ctx context.Context) {
	if c := CounterFrom(ctx); c != nil {
		c.n.Add(1)
	}
}

type countingDriver struct{}

func (countingDriver) Open(name string) (driver.Conn, error) {
	c, err := pq.Driver{}.Open(name)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c}, nil
}

// conn forwards to a pq connection, counting queries, execs and transaction statements.
type conn struct{ driver.Conn }

func (c *conn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	count(ctx)

	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *conn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	count(ctx)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *conn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	count(ctx)
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countedTx{Tx: tx, ctx: ctx}, nil
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type countedTx struct {
	driver.Tx
	ctx context.Context
}

func (t *countedTx) Commit() error   { count(t.ctx); return t.Tx.Commit() }
func (t *countedTx) Rollback() error { count(t.ctx); return t.Tx.Rollback() }
