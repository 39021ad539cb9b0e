package app_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/metrics"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads /metrics from h and returns its samples.
func scrape(t *testing.T, h http.Handler) []sample {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %.500s", rec.Code, rec.Body.String())
	}
	var out []sample
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("bad sample %q", l)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// value returns the sample of name with exactly labels ("k=v" each), failing when there is none.
func value(t *testing.T, samples []sample, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = v
	}
next:
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(want) {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

// TestMetricsCountRequestsByOperation builds a server with a registry, sends
// named, refused, anonymous and unparsable requests, requests with more
// operation names than the series keep, and one refused by a rate limit, and
// reads every application series back from /metrics.
func TestMetricsCountRequestsByOperation(t *testing.T) {
	t.Parallel()
	reg := metrics.New()
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Argon2: apitest.FastArgon2, Metrics: reg}) // default rate limits
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	api := &apitest.Server{URL: hs.URL}
	expose := metrics.Handler(reg)

	// A pending message 60 days old that the worker leaves alone (due tomorrow).
	recipient := fmt.Sprintf("outbox-%s@example.com", uuid.NewString()[:8])
	if _, err := srv.DB.Exec(`INSERT INTO mail_outbox (recipient, subject, body, created_at, next_attempt_at)
		VALUES ($1, 'metrics', 'x', now() - interval '60 days', now() + interval '1 day')`, recipient); err != nil {
		t.Fatal(err)
	}
	defer srv.DB.Exec(`DELETE FROM mail_outbox WHERE recipient = $1`, recipient) //nolint:errcheck

	// A query that succeeds, twice; one refused; one anonymous.
	for range 2 {
		apitest.MustOK(t, api.Post(t, "", `query Ping { __typename }`, nil))
	}
	if c := api.Post(t, "", `query Me { me { id } }`, nil).Code(); c != "UNAUTHENTICATED" {
		t.Fatalf("anonymous me: %s", c)
	}
	apitest.MustOK(t, api.Post(t, "", `{ __typename }`, nil))
	// Logins on one email: 5 wrong passwords, then the limit refuses the 6th.
	email := apitest.UniqueEmail("metrics")
	for i := range 6 {
		want := "UNAUTHENTICATED"
		if i == 5 {
			want = "RATE_LIMITED"
		}
		if c := api.Post(t, "", `mutation Login($e: String!) { login(email: $e, password: "wrong-password") { accessToken } }`,
			map[string]any{"e": email}).Code(); c != want {
			t.Fatalf("login %d: %s, want %s", i+1, c, want)
		}
	}
	// Requests that never reach an operation: a parse error, a body over the
	// limit, a Content-Type the endpoint does not take.
	if c := api.Post(t, "", `query Broken {`, nil).Code(); c != "GRAPHQL_PARSE_FAILED" {
		t.Fatalf("parse error: %s", c)
	}
	for _, r := range []struct {
		body, ct string
		status   int
	}{
		{`{"query":"` + strings.Repeat(" ", app.MaxBodyBytes) + `{ __typename }"}`, "application/json", http.StatusRequestEntityTooLarge},
		{`{ __typename }`, "text/plain", http.StatusUnsupportedMediaType},
	} {
		res, err := http.Post(hs.URL+"/query", r.ct, bytes.NewReader([]byte(r.body)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != r.status {
			t.Fatalf("POST %s: %d, want %d", r.ct, res.StatusCode, r.status)
		}
	}
	// Random names, more than the series keep: the first ones fill the cap
	// (Ping, Me and Login took three places), the rest collapse.
	const extra = 5
	for i := range metrics.MaxOperationNames - 3 + extra {
		apitest.MustOK(t, api.Post(t, "", fmt.Sprintf(`query R%d_%s { __typename }`, i, strings.ReplaceAll(uuid.NewString(), "-", "")), nil))
	}
	// Known names stay known once the cap is reached.
	apitest.MustOK(t, api.Post(t, "", `query Ping { __typename }`, nil))

	s := scrape(t, expose)
	const requests = "tenantgraph_graphql_requests_total"
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"operation=Ping", "type=query", "code=OK"}, 3},
		{[]string{"operation=Me", "type=query", "code=UNAUTHENTICATED"}, 1},
		{[]string{"operation=Login", "type=mutation", "code=UNAUTHENTICATED"}, 5},
		{[]string{"operation=Login", "type=mutation", "code=RATE_LIMITED"}, 1},
		// The anonymous query and the names past the cap.
		{[]string{"operation=(other)", "type=query", "code=OK"}, 1 + extra},
		{[]string{"operation=(none)", "type=none", "code=GRAPHQL_PARSE_FAILED"}, 1},
		{[]string{"operation=(none)", "type=none", "code=BAD_USER_INPUT"}, 1},
		{[]string{"operation=(none)", "type=none", "code=BAD_REQUEST"}, 1},
	} {
		if got := value(t, s, requests, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", requests, c.labels, got, c.want)
		}
	}
	// Bounded: no more operation label values than the cap and the two stand-ins.
	ops := map[string]bool{}
	for _, x := range s {
		if x.name == requests {
			ops[x.labels["operation"]] = true
		}
	}
	if len(ops) != metrics.MaxOperationNames+2 {
		t.Errorf("%d operation label values, want %d (the cap, (other) and (none))", len(ops), metrics.MaxOperationNames+2)
	}
	if got := value(t, s, "tenantgraph_graphql_operation_names"); got != metrics.MaxOperationNames {
		t.Errorf("tenantgraph_graphql_operation_names = %v, want %d", got, metrics.MaxOperationNames)
	}

	// Latency and SQL statements by operation: Ping sends no SQL, Login does.
	if got := value(t, s, "tenantgraph_graphql_request_duration_seconds_count", "operation=Login", "type=mutation"); got != 6 {
		t.Errorf("Login duration count = %v, want 6", got)
	}
	if got := value(t, s, "tenantgraph_graphql_request_duration_seconds_bucket", "operation=Ping", "type=query", "le=10"); got != 3 {
		t.Errorf("Ping duration le=10 = %v, want 3", got)
	}
	if got := value(t, s, "tenantgraph_graphql_request_sql_statements_bucket", "operation=Ping", "type=query", "le=0"); got != 3 {
		t.Errorf("Ping with 0 SQL statements = %v, want 3", got)
	}
	if got := value(t, s, "tenantgraph_graphql_request_sql_statements_count", "operation=Login", "type=mutation"); got != 6 {
		t.Errorf("Login statements count = %v, want 6", got)
	}
	if got := value(t, s, "tenantgraph_graphql_request_sql_statements_sum", "operation=Login", "type=mutation"); got < 5 {
		t.Errorf("Login statements sum = %v, want at least one per unthrottled login", got)
	}

	// Rate-limit refusals by limit.
	if got := value(t, s, "tenantgraph_rate_limit_refusals_total", "limit=login_per_email_ip"); got != 1 {
		t.Errorf("refusals by login_per_email_ip = %v, want 1", got)
	}

	// Hashing falls back to the process only when hash workers fail; this
	// server hashes in process from the start, which is no fallback.
	if got := value(t, s, "tenantgraph_password_hash_fallbacks_total"); got != 0 {
		t.Errorf("tenantgraph_password_hash_fallbacks_total = %v, want 0", got)
	}

	// The pool, read at scrape time.
	if got := value(t, s, "go_sql_max_open_connections", "db_name=tenantgraph"); got != float64(srv.DB.Stats().MaxOpenConnections) {
		t.Errorf("go_sql_max_open_connections = %v, want %d", got, srv.DB.Stats().MaxOpenConnections)
	}
	for _, name := range []string{"go_sql_in_use_connections", "go_sql_idle_connections", "go_sql_wait_count_total", "go_sql_wait_duration_seconds_total"} {
		value(t, s, name, "db_name=tenantgraph")
	}

	// The outbox, read at scrape time: at least our message, at least its age.
	if got := value(t, s, "tenantgraph_mail_outbox_pending"); got < 1 {
		t.Errorf("tenantgraph_mail_outbox_pending = %v, want at least 1", got)
	}
	if got := value(t, s, "tenantgraph_mail_outbox_oldest_pending_age_seconds"); got < (60 * 24 * time.Hour).Seconds() {
		t.Errorf("tenantgraph_mail_outbox_oldest_pending_age_seconds = %v, want at least 60 days", got)
	}

	// The websockets, read at scrape time.
	u := srv.Register(t, "metrics-ws")
	w := api.MustDialWS(t, u.AccessToken)
	s = scrape(t, expose)
	if got := value(t, s, "tenantgraph_websockets"); got != 1 {
		t.Errorf("tenantgraph_websockets = %v with one open, want 1", got)
	}
	if got := value(t, s, "tenantgraph_subscriptions"); got != 0 {
		t.Errorf("tenantgraph_subscriptions = %v, want 0", got)
	}
	w.Close()
}
