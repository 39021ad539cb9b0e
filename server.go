// Command tenantgraph serves the tenantgraph GraphQL API.
//
//	tenantgraph [serve]                 serve HTTP (development applies migrations first)
//	tenantgraph migrate up|down|status  manage the database schema
//
// The server also runs itself as `tenantgraph hash-worker` (a child process
// computing password hashes on stdin and stdout; see auth.RunHashWorker).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"tenantgraph/internal/app"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/metrics"
	"tenantgraph/internal/platform/tracing"
)

// ServeGCPercent is the server's garbage-collection target unless GOGC is set:
// the heap may grow 400% over the live data between two collections instead of
// Go's 100%. The live heap is small (a few MB) and each request's garbage dies
// young, so collecting a quarter as often cut the dashboard's server CPU per
// request by about a third (2.7 to 1.7 ms; docs/testing.md, Load test) for a peak RSS of
// 40-100 MB instead of 25-33 MB under load. The hash workers keep Go's default.
const ServeGCPercent = 400

const (
	shutdownTimeout    = 20 * time.Second
	revocationsTimeout = 30 * time.Second
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tenantgraph:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	if cmd == "migrate" {
		return migrate(args[1:])
	}
	if cmd == "audit" {
		return auditCmd(args[1:], os.Stdout)
	}
	if cmd == "org" {
		return orgCmd(args[1:], os.Stdout)
	}
	if cmd == auth.WorkerArg {
		return auth.RunHashWorker()
	}
	if cmd != "serve" {
		return fmt.Errorf("unknown command %q (want serve, migrate, audit or org)", cmd)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(ServeGCPercent)
	}
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if !cfg.Production() {
		// On a pool of its own without the requests' statement timeout: a
		// migration may take longer.
		if err := migrateUp(ctx, cfg.DatabaseURL, cfg.DB); err != nil {
			return err
		}
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	checkStatementTimeout(ctx, log, d, cfg.DB.StatementTimeout)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		_, stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	// The one registry of the process: whatever reports metrics registers on it.
	// Without METRICS_ADDR nothing is recorded.
	var appMetrics prometheus.Registerer
	if cfg.MetricsAddr != "" {
		reg := metrics.New()
		_, stopMetrics, err := serveMetrics(cfg.MetricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		appMetrics = reg
	}
	return serve(ctx, cfg, log, d, ln, appMetrics)
}

// migrateUp applies the pending migrations on a pool of its own with no
// statement timeout (db.Unbounded), closed when they are done.
func migrateUp(ctx context.Context, url string, o db.Options) error {
	o.StatementTimeout = db.Unbounded
	m, err := db.Open(ctx, url, o)
	if err != nil {
		return err
	}
	defer m.Close()
	return db.MigrateUp(ctx, m.DB)
}

// checkStatementTimeout warns when the pool's connections do not have the
// statement timeout configured (DATABASE_STATEMENT_TIMEOUT): behind PgBouncer,
// which drops the startup parameter, it is set on PgBouncer's side
// (docs/operations.md, "PgBouncer"), and a forgotten one leaves requests
// unbounded. One statement, at start.
func checkStatementTimeout(ctx context.Context, log *slog.Logger, d *sqlx.DB, want time.Duration) {
	if want == 0 {
		return
	}
	got, err := db.SessionStatementTimeout(ctx, d)
	switch {
	case err != nil:
		log.Warn("statement timeout: could not read it", "error", err)
	case got != want.Truncate(time.Millisecond):
		log.Warn("statement timeout: the pool's connections do not have the configured one: behind PgBouncer, set it there (docs/operations.md, PgBouncer)",
			"configured", want.String(), "in_effect", got.String())
	default:
		log.Info("statement timeout", "timeout", got.String())
	}
}

// servePprof serves net/http/pprof on addr, apart from the API (development
// only: config refuses PPROF_ADDR in production); stop closes it.
func servePprof(addr string, log *slog.Logger) (bound string, stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveAside("PPROF_ADDR", "pprof", addr, "/debug/pprof/", mux, log)
}

// serveMetrics serves reg in the Prometheus text format at /metrics on addr,
// apart from the API; stop closes it.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (bound string, stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	return serveAside("METRICS_ADDR", "metrics", addr, "/metrics", mux, log)
}

// serveAside serves h on a listener of its own at addr (the setting named
// variable), for what must never be on the API's address; stop closes it.
func serveAside(variable, what, addr, path string, h http.Handler, log *slog.Logger) (bound string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", variable, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	log.Info(what, "addr", ln.Addr().String(), "path", path)
	return ln.Addr().String(), func() { srv.Close() }, nil //nolint:errcheck
}

// migrate needs only DATABASE_URL, so that a release can migrate before the
// server's other settings exist.
func migrate(args []string) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// No statement timeout: a migration may take long (on DATABASE_URL straight
	// to PostgreSQL; behind PgBouncer, PgBouncer's own applies).
	d, err := db.Open(ctx, url, db.Options{StatementTimeout: db.Unbounded})
	if err != nil {
		return err
	}
	defer d.Close()
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "up":
		return db.MigrateUp(ctx, d.DB)
	case "down":
		return db.MigrateDown(ctx, d.DB)
	case "status":
		return db.MigrateStatus(ctx, d.DB, os.Stdout)
	}
	return errors.New("usage: tenantgraph migrate up|down|status")
}

// operatorDB opens DATABASE_URL for an operator's command (audit verify, org
// limits), which reads only it and DATABASE_PREPARED_STATEMENTS (off behind
// PgBouncer in transaction mode), with no statement timeout: a long chain
// takes long to check.
func operatorDB(ctx context.Context) (*sqlx.DB, error) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	opts, err := db.ParsePrepared(os.Getenv(db.PreparedSetting))
	if err != nil {
		return nil, err
	}
	opts.StatementTimeout = db.Unbounded
	return db.Open(ctx, url, opts)
}

// orgLimitsUsage is the org command's usage line.
const orgLimitsUsage = "usage: tenantgraph org limits get|set --org ID [--seats N] [--customers N] [--notes-per-customer N] [--products N] [--orders-per-day N]"

// orgCmd is `tenantgraph org limits get|set --org ID [--seats N ...]`: an
// operator reads an organization's quotas and their use, or changes some
// (the others keep their values), on DATABASE_URL, and sees them afterwards.
func orgCmd(args []string, out io.Writer) error {
	if len(args) < 2 || args[0] != "limits" || (args[1] != "get" && args[1] != "set") {
		return errors.New(orgLimitsUsage)
	}
	fs := flag.NewFlagSet("org limits "+args[1], flag.ContinueOnError)
	orgID := fs.String("org", "", "the organization's id")
	var change org.LimitsChange
	for _, f := range []struct {
		name, usage string
		v           **int
	}{
		{"seats", "members plus pending invitations", &change.Seats},
		{"customers", "active customers", &change.Customers},
		{"notes-per-customer", "notes one customer may have", &change.NotesPerCustomer},
		{"products", "active products", &change.Products},
		{"orders-per-day", "orders placed in a day, in the organization's time zone", &change.OrdersPerDay},
	} {
		fs.Func(f.name, f.usage, func(s string) error {
			n, err := strconv.Atoi(s)
			*f.v = &n
			return err
		})
	}
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	id, err := uuid.Parse(*orgID)
	if err != nil {
		return fmt.Errorf("--org: %w\n%s", err, orgLimitsUsage)
	}
	if args[1] == "get" && change != (org.LimitsChange{}) {
		return errors.New("org limits get takes only --org")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := operatorDB(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	orgs := org.NewService(org.Deps{DB: d, Now: time.Now})
	var l *org.OrganizationLimits
	if args[1] == "set" {
		l, err = orgs.SetLimits(ctx, id, change)
	} else {
		var all map[uuid.UUID]*org.OrganizationLimits
		all, err = orgs.Limits(ctx, []uuid.UUID{id})
		if l = all[id]; err == nil && l == nil {
			err = errors.New("organization not found")
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "organization %s\n", id)
	for _, q := range []struct {
		name string
		q    org.Quota
	}{{"seats", l.Seats}, {"customers", l.Customers}, {"products", l.Products}, {"orders-per-day", l.OrdersPerDay}} {
		fmt.Fprintf(out, "%-19s %d of %d\n", q.name, q.q.Used, q.q.Max)
	}
	fmt.Fprintf(out, "%-19s %d\n", "notes-per-customer", l.NotesPerCustomer)
	return nil
}

// errChainBroken makes `tenantgraph audit verify` exit non-zero.
var errChainBroken = errors.New("audit verify: broken chain")

// auditCmd is `tenantgraph audit verify [--org ID]`: it recomputes every
// organization's audit hash chain (or one's) on DATABASE_URL, prints each
// broken one, and fails when any is.
func auditCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	org := fs.String("org", "", "check only this organization's chain")
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: tenantgraph audit verify [--org ID]")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var orgs []uuid.UUID
	if *org != "" {
		id, err := uuid.Parse(*org)
		if err != nil {
			return fmt.Errorf("--org: %w", err)
		}
		orgs = []uuid.UUID{id}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := operatorDB(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	checked, broken, err := audit.VerifyAll(ctx, d, orgs, func(org uuid.UUID, i *audit.Integrity) {
		if i.Broken() {
			fmt.Fprintf(out, "BROKEN %s: link %d (event %s) does not hold; %d links checked, the last good is %d\n",
				org, *i.BrokenSeq, *i.BrokenEventID, i.Checked, i.LastVerified)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "audit verify: %d organizations checked, %d broken\n", checked, broken)
	if broken > 0 {
		return errChainBroken
	}
	return nil
}

// serve answers on ln until ctx ends, then stops accepting, lets in-flight
// requests finish (up to shutdownTimeout), stops the background work and returns.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, d *sqlx.DB, ln net.Listener, reg prometheus.Registerer) error {
	exe, err := workerBinary()
	if err != nil {
		return fmt.Errorf("hash workers: %w", err)
	}
	// Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/operations.md, "Tracing").
	tr, err := tracing.Setup(ctx, log)
	if err != nil {
		return err
	}
	if tr.Provider != nil {
		log.Info("tracing", "exporter", "otlp/http", "traceparent", tr.Propagator != nil)
	}
	defer func() { // last: flush the spans not yet exported
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(fctx); err != nil {
			log.Warn("tracing: flush on exit", "error", err)
		}
	}()
	a, err := app.New(app.Options{Config: cfg, DB: d, Log: log, HashWorker: []string{exe, auth.WorkerArg},
		Metrics: reg, TracerProvider: tr.Provider, TracePropagator: tr.Propagator})
	if err != nil {
		return err
	}
	defer a.Close()
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}

	workerCtx, stopWorker := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.MailWorker.Run(workerCtx) })
	wg.Go(func() { a.Maintain(workerCtx) })
	wg.Go(func() { a.Hub.Run(workerCtx) })
	wg.Go(func() { a.Sealer.Run(workerCtx) })
	wg.Go(func() { a.Feed.Run(workerCtx) })
	wg.Go(func() { a.Revocations.Run(workerCtx) })
	// Serve only once ended sessions are known: before that, their access tokens would pass.
	select {
	case <-a.Revocations.Ready():
	case <-time.After(revocationsTimeout):
		stopWorker()
		wg.Wait()
		return fmt.Errorf("session revocations not loaded after %s: does DATABASE_DIRECT_URL (default DATABASE_URL) reach PostgreSQL directly (LISTEN)?", revocationsTimeout)
	case <-ctx.Done():
		stopWorker()
		wg.Wait()
		return nil
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	attrs := []any{"addr", ln.Addr().String(), "env", cfg.Env, "jwt_kid", cfg.JWTKeys[0].ID, "graphql", "/query", "mail", cfg.MailDriver}
	if cfg.TrustedDocuments != nil {
		attrs = append(attrs, "trusted_documents", len(cfg.TrustedDocuments)) // nothing else runs
	}
	log.Info("serving", attrs...)

	select {
	case err := <-errc:
		stopWorker()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	a.CloseSockets() // Shutdown waits for requests, not for the websockets it handed over
	err = srv.Shutdown(sctx)
	a.Accounts.Wait() // password reset requests answered but still being resolved
	stopWorker()
	wg.Wait()
	log.Info("stopped")
	return err
}

func newLogger(cfg config.Config) *slog.Logger {
	if cfg.Production() {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// workerBinary is what hash workers run: the server's own binary. On Linux that
// is /proc/self/exe, which stays the running binary even when a deploy has
// replaced (or removed) the file on disk, so a worker started later speaks the
// same protocol; elsewhere the executable's path.
func workerBinary() (string, error) {
	const self = "/proc/self/exe"
	if _, err := os.Stat(self); err == nil {
		return self, nil
	}
	return os.Executable()
}
