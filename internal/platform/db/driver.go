package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"strings"
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

// connector opens counting connections that, when prepare is set, prepare each
// statement once per connection and reuse it (see conn).
type connector struct {
	pq      driver.Connector
	prepare bool
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := c.pq.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cn := &conn{Conn: pc}
	if c.prepare {
		cn.stmts = map[string]*cachedStmt{}
	}
	return cn, nil
}

func (connector) Driver() driver.Driver { return countingDriver{} }

// CustomPlan, at the start of a statement's text, sends it unnamed even with
// prepared statements on: PostgreSQL then plans it for its values on every
// call. A named statement gets a generic plan after 5 calls, one plan for all
// values; for a statement whose best plan depends on them (a customer search:
// walking the name index suits a term that matches thousands, the trigram
// index one that matches six) that plan can be 100 times slower than the
// right one (docs/testing.md, "Benchmarks", BenchmarkCustomerSearch).
const CustomPlan = "/* custom plan */ "

// StatementCacheSize bounds the statements prepared on one connection; beyond
// it the least recently used is closed. The stores' statements are fixed
// texts, about 80 of them today.
const StatementCacheSize = 256

// conn forwards to a pq connection, counting queries, execs and transaction
// statements. With a statement cache (stmts not nil) it sends every query and
// exec with arguments (but those starting with CustomPlan) as a statement
// prepared on this connection the first time its text is seen: PostgreSQL
// parses and plans it once per connection instead of on each call, and each
// later call is one round trip (Bind/Execute) instead of two. Those without
// arguments go as simple queries, which may hold several statements (the
// migrations).
type conn struct {
	driver.Conn
	stmts map[string]*cachedStmt
	tick  uint64 // use counter, for least-recently-used eviction
	inTx  bool
}

type cachedStmt struct {
	driver.Stmt
	used uint64
}

// query and exec map the errors a client may see (mapError: TIMEOUT,
// QUOTA_EXCEEDED), on the statement and on the rows it streams.
func (c *conn) query(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	count(ctx)
	var rows driver.Rows
	var err error
	if c.stmts == nil || len(args) == 0 || strings.HasPrefix(q, CustomPlan) {
		rows, err = c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	} else {
		rows, err = withStmt(c, ctx, q, func(st driver.Stmt) (driver.Rows, error) {
			return st.(driver.StmtQueryContext).QueryContext(ctx, args)
		})
	}
	if err != nil {
		return nil, mapError(ctx, err)
	}
	return &mappedRows{Rows: rows, ctx: ctx}, nil
}

func (c *conn) exec(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	count(ctx)
	var res driver.Result
	var err error
	if c.stmts == nil || len(args) == 0 || strings.HasPrefix(q, CustomPlan) {
		res, err = c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	} else {
		res, err = withStmt(c, ctx, q, func(st driver.Stmt) (driver.Result, error) {
			return st.(driver.StmtExecContext).ExecContext(ctx, args)
		})
	}
	return res, mapError(ctx, err)
}

// withStmt runs use with q's prepared statement on c, preparing it first when
// needed. A statement whose cached plan no longer fits the schema (a migration
// changed a table it reads: SQLSTATE 0A000, "cached plan must not change result
// type") is dropped from the cache; outside a transaction the call is retried
// once on a fresh statement, inside one the error stands (the transaction is
// aborted) and the next use prepares anew.
func withStmt[R any](c *conn, ctx context.Context, q string, use func(driver.Stmt) (R, error)) (R, error) {
	st, err := c.stmt(ctx, q)
	if err != nil {
		var zero R
		return zero, err
	}
	r, err := use(st)
	if err != nil && isStalePlan(err) {
		c.drop(q)
		if !c.inTx {
			if st, err = c.stmt(ctx, q); err != nil {
				return r, err
			}
			return use(st)
		}
	}
	return r, err
}

func (c *conn) stmt(ctx context.Context, q string) (driver.Stmt, error) {
	c.tick++
	if cs, ok := c.stmts[q]; ok {
		cs.used = c.tick
		return cs.Stmt, nil
	}
	if len(c.stmts) >= StatementCacheSize {
		c.evict()
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.stmts[q] = &cachedStmt{Stmt: st, used: c.tick}
	return st, nil
}

// evict closes the least recently used statement.
func (c *conn) evict() {
	var oldest string
	var at uint64 = math.MaxUint64
	for q, cs := range c.stmts {
		if cs.used < at {
			oldest, at = q, cs.used
		}
	}
	c.drop(oldest)
}

func (c *conn) drop(q string) {
	if cs, ok := c.stmts[q]; ok {
		delete(c.stmts, q)
		cs.Close() //nolint:errcheck // a failed close leaves the connection bad, and the pool drops it
	}
}

func isStalePlan(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "0A000" && strings.Contains(pe.Message, "cached plan")
}

func (c *conn) Close() error {
	c.stmts = nil // closing the connection frees its statements on the server
	return c.Conn.Close()
}

func (c *conn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *conn) begin(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	count(ctx)
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return &countedTx{Tx: tx, ctx: ctx, conn: c}, nil
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
	ctx  context.Context
	conn *conn
}

func (t *countedTx) commit() error {
	count(t.ctx)
	t.conn.inTx = false
	return mapError(t.ctx, t.Tx.Commit()) // deferred triggers run at commit
}

func (t *countedTx) rollback() error {
	count(t.ctx)
	t.conn.inTx = false
	return t.Tx.Rollback()
}
