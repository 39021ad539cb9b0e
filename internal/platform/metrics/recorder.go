package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of requests that carry no usable operation name.
const (
	// OtherOperation stands for every operation name that is not known: anonymous
	// operations, names over MaxOperationNameBytes and names past the cap
	// (MaxOperationNames). It is not a valid GraphQL name, so no client's name
	// can pass for it.
	OtherOperation = "(other)"
	// NoOperation is the operation of a request that never reached one (refused
	// by the transport, the parser, validation or the limits); its type is NoType.
	NoOperation = "(none)"
	NoType      = "none"
)

// MaxOperationNames caps the distinct operation names the series carry per
// process: the first names seen on operations that ran are kept, in order of
// first use, and every later new name counts as OtherOperation.
// MaxOperationNameBytes caps the length of a kept name.
const (
	MaxOperationNames     = 100
	MaxOperationNameBytes = 64
)

// LatencyBuckets are the upper bounds of the request duration histogram, in
// seconds: 1 ms to 10 s.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// WaitBuckets are the upper bounds of the organization share's wait
// histogram, in seconds: 1 ms to 2.5 s (the wait is bounded by
// ORG_CONCURRENT_WAIT, 1 s by default).
var WaitBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// StatementBuckets are the upper bounds of the SQL statements per request histogram.
var StatementBuckets = []float64{0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89}

// Recorder records the application's series on one registry. A nil *Recorder
// records nothing.
type Recorder struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	statements *prometheus.HistogramVec
	refusals   *prometheus.CounterVec
	quotas     *prometheus.CounterVec
	timeouts   *prometheus.CounterVec
	orgWaits   *prometheus.HistogramVec

	mu    sync.RWMutex
	known map[string]bool // operation names kept as label values
}

// NewRecorder registers the application's request series on reg.
func NewRecorder(reg prometheus.Registerer) (*Recorder, error) {
	op := []string{"operation", "type"}
	r := &Recorder{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgraph_graphql_requests_total",
			Help: "GraphQL requests by operation name, operation type and outcome code (OK, or the first error's extensions.code).",
		}, []string{"operation", "type", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgraph_graphql_request_duration_seconds",
			Help:    "Time from the request reaching the GraphQL endpoint to its response, by operation name and type.",
			Buckets: LatencyBuckets,
		}, op),
		statements: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgraph_graphql_request_sql_statements",
			Help:    "SQL statements sent to PostgreSQL while serving one GraphQL request, by operation name and type.",
			Buckets: StatementBuckets,
		}, op),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgraph_rate_limit_refusals_total",
			Help: "Requests (or parts of them) refused with RATE_LIMITED, by the limit that refused them.",
		}, []string{"limit"}),
		quotas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgraph_quota_refusals_total",
			Help: "Writes refused with QUOTA_EXCEEDED, by the organization limit that refused them (seats, customers, products, ordersPerDay, notesPerCustomer).",
		}, []string{"limit"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgraph_statement_timeouts_total",
			Help: "SQL statements PostgreSQL cancelled at the statement timeout (DATABASE_STATEMENT_TIMEOUT) while serving a GraphQL request, by operation type.",
		}, []string{"type"}),
		orgWaits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgraph_organization_share_wait_seconds",
			Help:    "Time queries and mutations waited for a slot of their organization's share of the process (only those that waited), by outcome: admitted, or refused (RATE_LIMITED, limit organization_concurrent).",
			Buckets: WaitBuckets,
		}, []string{"outcome"}),
		known: map[string]bool{},
	}
	names := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tenantgraph_graphql_operation_names",
		Help: "Distinct operation names the GraphQL series carry; at " + strconv.Itoa(MaxOperationNames) + " new names count as " + OtherOperation + ".",
	}, func() float64 {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return float64(len(r.known))
	})
	for _, c := range []prometheus.Collector{r.requests, r.duration, r.statements, r.refusals, r.quotas, r.timeouts, r.orgWaits, names} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Present at 0 from the start, so that a rate over them needs no first timeout.
	for _, typ := range []string{"query", "mutation", "subscription", NoType} {
		r.timeouts.WithLabelValues(typ)
	}
	return r, nil
}

// Request is one GraphQL request as the edge saw it.
type Request struct {
	Type       string // query, mutation or subscription; "" when no operation ran
	Operation  string // the operation's name in the document; "" when anonymous
	Code       string // OK, or the first error's extensions.code
	Duration   time.Duration
	Statements int64 // SQL statements sent
	// Timeouts is how many of them PostgreSQL cancelled at the statement timeout.
	Timeouts int
}

// Request records one request.
func (r *Recorder) Request(q Request) {
	if r == nil {
		return
	}
	typ, op := q.Type, NoOperation
	if typ == "" {
		typ = NoType
	} else {
		op = r.label(q.Operation)
	}
	r.requests.WithLabelValues(op, typ, q.Code).Inc()
	r.duration.WithLabelValues(op, typ).Observe(q.Duration.Seconds())
	r.statements.WithLabelValues(op, typ).Observe(float64(q.Statements))
	if q.Timeouts > 0 {
		r.timeouts.WithLabelValues(typ).Add(float64(q.Timeouts))
	}
}

// label is the label value of the operation name: the name itself when it is
// known or can still be admitted, OtherOperation otherwise.
func (r *Recorder) label(name string) string {
	if name == "" || len(name) > MaxOperationNameBytes {
		return OtherOperation
	}
	r.mu.RLock()
	ok := r.known[name]
	r.mu.RUnlock()
	if ok {
		return name
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known[name] {
		if len(r.known) >= MaxOperationNames {
			return OtherOperation
		}
		r.known[name] = true
	}
	return name
}

// RateLimited records one refusal by the limit named limit ("unnamed" for "").
func (r *Recorder) RateLimited(limit string) {
	if r == nil {
		return
	}
	if limit == "" {
		limit = "unnamed"
	}
	r.refusals.WithLabelValues(limit).Inc()
}

// QuotaExceeded records one refusal by the organization quota named limit
// (one of the five of migrations/00021: the label is bounded).
func (r *Recorder) QuotaExceeded(limit string) {
	if r == nil {
		return
	}
	r.quotas.WithLabelValues(limit).Inc()
}

// OrganizationWait records one wait for an organization's slot: how long, and
// whether the operation was admitted or refused.
func (r *Recorder) OrganizationWait(waited time.Duration, admitted bool) {
	if r == nil {
		return
	}
	outcome := "refused"
	if admitted {
		outcome = "admitted"
	}
	r.orgWaits.WithLabelValues(outcome).Observe(waited.Seconds())
}

// Backlog reads the mail outbox: how many messages are pending and how long
// the oldest of them has waited (0 when none is).
type Backlog func(ctx context.Context) (pending int64, oldest time.Duration, err error)

// OutboxTimeout bounds the outbox query of one scrape.
const OutboxTimeout = 2 * time.Second

// NewOutboxCollector reports the mail outbox at scrape time, from one query
// (backlog) bounded by OutboxTimeout. When it fails the scrape goes on without
// the two series (and the failure is logged): the pool and request series
// matter most when the database is in trouble.
func NewOutboxCollector(backlog Backlog, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	return &outbox{
		backlog: backlog,
		log:     log,
		pending: prometheus.NewDesc("tenantgraph_mail_outbox_pending",
			"Messages in the mail outbox not yet sent nor given up on (status pending), read at scrape time.", nil, nil),
		oldest: prometheus.NewDesc("tenantgraph_mail_outbox_oldest_pending_age_seconds",
			"Age of the oldest pending message of the mail outbox (0 when none is), read at scrape time.", nil, nil),
	}
}

type outbox struct {
	backlog         Backlog
	log             *slog.Logger
	pending, oldest *prometheus.Desc
}

func (o *outbox) Describe(ch chan<- *prometheus.Desc) {
	ch <- o.pending
	ch <- o.oldest
}

func (o *outbox) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), OutboxTimeout)
	defer cancel()
	n, age, err := o.backlog(ctx)
	if err != nil {
		o.log.Warn("metrics: reading the mail outbox failed", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(o.pending, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(o.oldest, prometheus.GaugeValue, age.Seconds())
}
