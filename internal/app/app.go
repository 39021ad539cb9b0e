// Package app wires configuration, services and the HTTP edge together. The
// server binary and the end-to-end tests build the very same App.
package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"tenantgraph/graph"
	"tenantgraph/internal/account"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/explorer"
	"tenantgraph/internal/platform/fairshare"
	"tenantgraph/internal/platform/httpx"
	"tenantgraph/internal/platform/mail"
	"tenantgraph/internal/platform/notify"
	"tenantgraph/internal/platform/reqmeta"
	"tenantgraph/internal/platform/tracing"
	"tenantgraph/internal/sales"
	"tenantgraph/internal/tenant"
)

// MaxBodyBytes caps GraphQL request bodies.
const MaxBodyBytes = 1 << 20

// RequestTimeout bounds the work of one GraphQL request. A client that goes
// away does not cut it short (httpx.Detach): it runs to its end or to this.
const RequestTimeout = 30 * time.Second

// Options build an App. Zero Now and Argon2 take the production defaults.
type Options struct {
	Config config.Config
	DB     *sqlx.DB
	Log    *slog.Logger
	Now    func() time.Time
	Argon2 auth.Argon2Params
	// MailPollInterval overrides how often the mail worker looks for due messages.
	MailPollInterval time.Duration
	// RateLimits replaces account.DefaultLimits (tests turn them off).
	RateLimits *account.Limits
	// QueryLimits replaces graph.DefaultLimits (tests tighten them).
	QueryLimits *graph.Limits
	// HashWorker, when set, is the command (binary and arguments) of a password
	// hash worker process (auth.RunHashWorker): argon2 then runs in such
	// children, not in this process (auth.Hasher.UseWorkers). The server binary
	// sets it; empty, hashing stays in process. Close the App to stop them.
	HashWorker []string
	// Metrics, when set, receives the application's series (docs/operations.md, Metrics):
	// requests, latency and SQL statements by operation, the database pool, the
	// mail outbox and rate-limit refusals. Nil records nothing.
	Metrics prometheus.Registerer
	// TracerProvider, when set, traces each request (tracing.Handler, the
	// GraphQL operation and root fields, the SQL statements); nil: no tracing,
	// and nothing of it on the request's path. TracePropagator reads a
	// request's traceparent (nil: none is read). See tracing.Setup.
	TracerProvider  trace.TracerProvider
	TracePropagator propagation.TextMapPropagator
	// SocketLimits replaces graph.DefaultSocketLimits (tests tighten them).
	SocketLimits *graph.SocketLimits
}

// App is the assembled server.
type App struct {
	Handler    http.Handler
	MailWorker *mail.Worker
	// Revocations keeps the set of ended sessions current; serve only once it is Ready.
	Revocations *account.RevocationWatcher
	// Hub is the process's LISTEN connection (mail, revocations): run it
	// beside the workers.
	Hub *notify.Hub
	// Sealer chains the audit log's committed events (run it beside the workers).
	Sealer *audit.Sealer
	// Feed reads the organizations' new events for organizationEvents (run it beside the workers).
	Feed *audit.Feed
	// CloseSockets closes the subscriptions' websockets (at shutdown, which
	// does not wait for them).
	CloseSockets func()
	Accounts     *account.Service
	Orgs         *org.Service
	Hasher       *auth.Hasher // every password hash and verification of the process

	db  *sqlx.DB
	log *slog.Logger
	now func() time.Time
}

// Close stops what New started outside the process: the hash workers.
func (a *App) Close() { a.Hasher.Close() }

// Retention of delivered mail (the bodies are already gone: see the mail worker).
const MailRetention = 30 * 24 * time.Hour

// PurgeOnce deletes what is kept only for a while: dead tokens, old delivered
// mail and expired idempotency keys.
func (a *App) PurgeOnce(ctx context.Context) error {
	tokens, err := a.Accounts.PurgeExpired(ctx)
	if err != nil {
		return err
	}
	mails, err := mail.Purge(ctx, a.db, a.now().Add(-MailRetention))
	if err != nil {
		return err
	}
	swept, err := tenant.SweepKeys(ctx, a.db, a.now())
	if err != nil {
		return err
	}
	if keys := int64(swept); tokens+mails+keys > 0 {
		a.log.InfoContext(ctx, "purged expired rows", "tokens", tokens, "mails", mails, "idempotency_keys", keys)
	}
	return nil
}

// Maintain runs PurgeOnce at start and then hourly until ctx ends. Every replica
// may run it: the deletes are idempotent.
func (a *App) Maintain(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := a.PurgeOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.ErrorContext(ctx, "purge failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// admissionClient names the client whose requests httpx.Admit counts
// together: the signed-in user (wherever they connect from, and apart from
// the others behind one office's address), else the client's address.
func admissionClient(r *http.Request) string {
	if v, ok := auth.ViewerFrom(r.Context()); ok {
		return "user:" + v.UserID.String()
	}
	return "addr:" + reqmeta.From(r.Context()).IP
}

// OrgQueueFactor: an organization's operations waiting for a slot are at most
// this many times its slots; one more is refused at once.
const OrgQueueFactor = 4

// OrganizationSlots is the number of operations of one organization served at
// once: cfg.OrgConcurrentShare of the smaller of MAX_CONCURRENT_REQUESTS and
// the pool's connections (poolConns; 0 for either is no limit), at least 1.
// An operation holds about one pool connection at a time, so the cap on an
// organization's operations caps its connections too. 0: no cap (the share
// is 0, or neither bound is set).
func OrganizationSlots(cfg config.Config, poolConns int) int {
	bound := 0
	for _, n := range []int{cfg.MaxConcurrentRequests, poolConns} {
		if n > 0 && (bound == 0 || n < bound) {
			bound = n
		}
	}
	if cfg.OrgConcurrentShare <= 0 || bound == 0 {
		return 0
	}
	return max(1, int(cfg.OrgConcurrentShare*float64(bound)))
}

// New assembles the App.
func New(o Options) (*App, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Argon2 == (auth.Argon2Params{}) {
		o.Argon2 = auth.DefaultArgon2
	}
	cfg := o.Config
	keys := make([]auth.Key, len(cfg.JWTKeys))
	for i, k := range cfg.JWTKeys {
		keys[i] = auth.Key{ID: k.ID, Secret: k.Secret}
	}
	tokens, err := auth.NewTokens(keys, cfg.AccessTokenTTL, o.Now)
	if err != nil {
		return nil, err
	}
	sender, err := mail.NewSender(mail.Config{
		Driver: cfg.MailDriver, Dir: cfg.MailDir, From: cfg.MailFrom,
		SMTPHost: cfg.SMTPHost, SMTPPort: cfg.SMTPPort, SMTPUsername: cfg.SMTPUsername, SMTPPassword: cfg.SMTPPassword,
	}, o.Log)
	if err != nil {
		return nil, err
	}
	limits := account.DefaultLimits()
	if o.RateLimits != nil {
		limits = *o.RateLimits
	}
	// A revoked session's access tokens live at most ACCESS_TOKEN_TTL plus the
	// verification leeway; a minute more covers clock skew between replicas.
	revoked := auth.NewRevokedSessions(cfg.AccessTokenTTL + auth.Leeway + time.Minute)
	hasher := auth.NewHasher(o.Argon2)
	if len(o.HashWorker) > 0 {
		hasher.UseWorkers(o.Log, o.HashWorker[0], o.HashWorker[1:]...)
	}
	accounts := account.NewService(account.Deps{
		DB: o.DB, Hasher: hasher, Tokens: tokens, RefreshTTL: cfg.RefreshTokenTTL,
		BaseURL: cfg.AppBaseURL, Now: o.Now, Log: o.Log, Limits: limits, Revoked: revoked,
	})

	// The process's one LISTEN connection, directly to PostgreSQL (docs/api.md, "Tokens";
	// docs/operations.md, "PgBouncer").
	hub := notify.New(cfg.DirectURL(), o.DB, o.Log)
	sealer := audit.NewSealer(o.DB, o.Log)
	auditLog := audit.NewService(o.DB)
	auditLog.SealWith(sealer)
	gate := tenant.NewGate(o.DB, o.Now, auditLog)
	orgs := org.NewService(org.Deps{DB: o.DB, Gate: gate, Audit: auditLog, Users: account.Store{}.UsersByIDs,
		CountMembers: loader.CountMembers, BaseURL: cfg.AppBaseURL, Now: o.Now, Log: o.Log})

	customers := customer.NewService(customer.Deps{DB: o.DB, Gate: gate,
		CountNotes: loader.CountNotes, Now: o.Now})

	products := catalog.NewService(catalog.Deps{DB: o.DB, Gate: gate, CountMovements: loader.CountMoves})
	orders := sales.NewService(sales.Deps{DB: o.DB, Gate: gate, Catalog: forSale{products}, CountOrders: loader.CountOrders})

	feed := audit.NewFeed(o.DB, hub, memberRole(orgs), audit.DefaultFeedLimits, o.Log)

	var tracer trace.Tracer
	if o.TracerProvider != nil {
		tracer = o.TracerProvider.Tracer(graph.TraceScope)
	}
	sources := loader.Sources{
		Users:         accounts.Users,
		Organizations: orgs.Organizations,
		Memberships:   orgs.Memberships,
		MemberCounts:  orgs.MemberCounts,
		Limits:        orgs.Limits,
		Owners:        orgs.Owners,
		MemberPages:   orgs.MemberPages,
		NotesPages:    customers.NotesPages,
		NoteCounts:    customers.NoteCounts,
		Customers:     customers.ByKeys,
		Products:      products.ByKeys,
		MovementPages: products.MovementsPages,
		MoveCounts:    products.MovementCounts,
		OrderPages:    orders.CustomerPages,
		OrderCounts:   orders.CustomerCounts,
		Lifetimes:     orders.LifetimeValues,
	}
	resolver := &graph.Resolver{Accounts: accounts, Orgs: orgs, Audit: auditLog, CRM: customers, Catalog: products, Sales: orders, Feed: feed}
	// One organization's share of the process (docs/api.md, "Request admission").
	var shares *fairshare.Limiter
	var sharesWaiting func() int
	slots := OrganizationSlots(cfg, o.DB.Stats().MaxOpenConnections)
	if slots > 0 {
		sharesWaiting = func() int { return shares.Stats().Waiting }
	}
	rec, err := newRecorder(o.Metrics, o.DB, o.Log, hasher, resolver.SocketCounts, sharesWaiting)
	if err != nil {
		return nil, err
	}
	if slots > 0 {
		shares = fairshare.New(fairshare.Options{Slots: slots, Queue: OrgQueueFactor * slots,
			Wait: cfg.OrgConcurrentWait, Observe: rec.OrganizationWait})
	}
	gql := graph.NewHandler(resolver,
		graph.HandlerOptions{Production: cfg.Production(), Log: o.Log, Limits: o.QueryLimits,
			TrustedDocuments: cfg.TrustedDocuments, Tracer: tracer, Organizations: shares,
			Socket: &graph.SocketOptions{Verify: tokens.VerifyUntil, Revoked: revoked, Now: o.Now,
				Loaders: func() *loader.Loaders { return loader.New(sources) }, Limits: socketLimits(o.SocketLimits)}})
	mux := http.NewServeMux()
	endpoint := observe(rec, httpx.NoStore(httpx.LimitBody(MaxBodyBytes,
		httpx.Detach(RequestTimeout, auth.Middleware(tokens, revoked,
			httpx.Admit(httpx.AdmitLimits{ClientRate: cfg.ClientRequestsPerSecond, ClientConcurrent: cfg.ClientConcurrentRequests,
				Concurrent: cfg.MaxConcurrentRequests}, admissionClient, o.Now,
				loader.Middleware(sources, gql)))))))
	// A websocket (graphql-transport-ws) skips the request's timeout, admission
	// and loaders: each of its operations gets its own (graph.SocketOptions).
	endpoint = sockets(httpx.CORSOptions{Origins: cfg.CORSOrigins, AnyLocalPort: cfg.CORSAnyLocalPort},
		socketLimits(o.SocketLimits).Sockets, gql, endpoint)
	mux.Handle("/query", endpoint)
	mux.Handle("/graphql", endpoint) // the path most clients try first
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck
	})
	ready, err := newReadiness(o.DB, o.Log)
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /readyz", ready)
	if !cfg.Production() {
		// The explorer (GraphiQL, served from the binary: docs/explorer.md).
		ex, err := explorer.New("tenantgraph", "/query")
		if err != nil {
			return nil, err
		}
		if missing := explorer.Missing(); len(missing) > 0 {
			o.Log.Warn("the explorer at / is missing its files: run make explorer-assets and build again", "missing", missing)
		}
		mux.Handle("GET /{$}", ex.Page())
		mux.Handle("GET "+explorer.Prefix, ex.Files())
	}

	var h http.Handler = mux
	h = httpx.CORS(httpx.CORSOptions{Origins: cfg.CORSOrigins, AnyLocalPort: cfg.CORSAnyLocalPort}, h)
	h = httpx.Edge(o.Log, cfg.TrustedProxies, h)
	if o.TracerProvider != nil {
		h = tracing.Handler(o.TracerProvider, o.TracePropagator, h) // outside Edge: its log line has the trace id
	}

	worker := mail.NewWorker(o.DB, sender, o.Log, mail.WorkerOptions{
		PollInterval: o.MailPollInterval,
		Notes:        hub.Subscribe(mail.NotifyChannel),
	})
	revocations := account.NewRevocationWatcher(o.DB, revoked, hub, o.Now, o.Log)
	return &App{Handler: h, Hub: hub, Sealer: sealer, Feed: feed, CloseSockets: resolver.CloseSockets, MailWorker: worker, Revocations: revocations, Accounts: accounts, Orgs: orgs, Hasher: hasher,
		db: o.DB, log: o.Log, now: o.Now}, nil
}
