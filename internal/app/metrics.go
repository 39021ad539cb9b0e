package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/httpx"
	"tenantgraph/internal/platform/mail"
	"tenantgraph/internal/platform/metrics"
	"tenantgraph/internal/platform/reqmeta"
)

// newRecorder registers the application's series on reg: the request series
// (recorded by observe), the database pool's (read from sql.DB.Stats at scrape
// time: go_sql_*{db_name="tenantgraph"}) and the mail outbox's (one query at
// scrape time), and the password hashes done in process because no hash
// worker could do them (read from the hasher at scrape time), and the open
// websockets and subscriptions (read at scrape time), and, when orgWaiting
// is set, the operations waiting for their organization's share (read at
// scrape time). A nil reg records nothing.
func newRecorder(reg prometheus.Registerer, d *sqlx.DB, log *slog.Logger, hasher *auth.Hasher, sockets func() (int, int), orgWaiting func() int) (*metrics.Recorder, error) {
	if reg == nil {
		return nil, nil
	}
	rec, err := metrics.NewRecorder(reg)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewDBStatsCollector(d.DB, "tenantgraph")); err != nil {
		return nil, err
	}
	backlog := func(ctx context.Context) (int64, time.Duration, error) { return mail.Backlog(ctx, d) }
	if err := reg.Register(metrics.NewOutboxCollector(backlog, log)); err != nil {
		return nil, err
	}
	fallbacks := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tenantgraph_password_hash_fallbacks_total",
		Help: "Password hashes and verifications done in the server's process because no hash worker could do them.",
	}, func() float64 { return float64(hasher.Fallbacks()) })
	if err := reg.Register(fallbacks); err != nil {
		return nil, err
	}
	for i, g := range []prometheus.GaugeOpts{
		{Name: "tenantgraph_websockets", Help: "Signed-in websockets (graphql-transport-ws) open in this process."},
		{Name: "tenantgraph_subscriptions", Help: "Subscriptions running in this process."},
	} {
		if err := reg.Register(prometheus.NewGaugeFunc(g, func() float64 {
			socks, subs := sockets()
			return float64([]int{socks, subs}[i])
		})); err != nil {
			return nil, err
		}
	}
	if orgWaiting != nil {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenantgraph_organization_share_waiting",
			Help: "Queries and mutations waiting for a slot of their organization's share of the process, read at scrape time.",
		}, func() float64 { return float64(orgWaiting()) })); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// observe records each request to next in rec: its operation (set by the
// GraphQL layer in reqmeta), outcome code, duration, SQL statements (the
// edge's db.Counter), statements cut by the statement timeout and rate-limit refusals. It runs inside httpx.Edge.
func observe(rec *metrics.Recorder, next http.Handler) http.Handler {
	if rec == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &httpx.StatusWriter{ResponseWriter: w}
		completed := false
		defer func() {
			meta := reqmeta.From(r.Context())
			typ, name := meta.OperationType()
			code := meta.Outcome()
			switch {
			case !completed: // a panic on its way to the edge's recovery
				code = "INTERNAL_SERVER_ERROR"
			case code != "":
			case sw.Status() >= 500:
				code = "INTERNAL_SERVER_ERROR"
			case sw.Status() >= 400:
				code = "BAD_REQUEST"
			default:
				code = "OK"
			}
			var statements int64
			if c := db.CounterFrom(r.Context()); c != nil {
				statements = c.Load()
			}
			rec.Request(metrics.Request{Type: typ, Operation: name, Code: code, Duration: time.Since(start), Statements: statements,
				Timeouts: meta.StatementTimeouts()})
			for _, l := range meta.RateLimits() {
				rec.RateLimited(l)
			}
			for _, l := range meta.Quotas() {
				rec.QuotaExceeded(l)
			}
		}()
		next.ServeHTTP(sw, r)
		completed = true
	})
}
