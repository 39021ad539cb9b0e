package app_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

// tracedServer starts a server of its own on the shared database whose spans
// go to an in-memory exporter, reading traceparent as the server binary does
// by default; its log lines go to the returned writer.
func tracedServer(t *testing.T) (*apitest.Server, *tracetest.InMemoryExporter, *apitest.SyncBuffer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)) // the SDK's default sampler: parentbased_always_on
	logs := &apitest.SyncBuffer{}
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(logs, nil)),
		Argon2: apitest.FastArgon2, TracerProvider: tp, TracePropagator: propagation.TraceContext{}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return &apitest.Server{URL: hs.URL}, exp, logs
}

// requestSpan waits (up to 5 s) for the server span of the request whose
// request.id is id, and returns it with every span of its trace.
func requestSpan(t *testing.T, exp *tracetest.InMemoryExporter, id string) (tracetest.SpanStub, []tracetest.SpanStub) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		spans := exp.GetSpans()
		for _, s := range spans {
			if s.SpanKind == trace.SpanKindServer && attr(s, "request.id") == id {
				var tree []tracetest.SpanStub
				for _, o := range spans {
					if o.SpanContext.TraceID() == s.SpanContext.TraceID() {
						tree = append(tree, o)
					}
				}
				return s, tree
			}
		}
	}
	t.Fatalf("no request span with request.id %s", id)
	return tracetest.SpanStub{}, nil
}

// accessLogLine waits (up to 5 s) for the access log line of request id.
func accessLogLine(t *testing.T, logs *apitest.SyncBuffer, id string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^.*msg=request .*request_id=` + id + `( .*)?$`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if line := re.FindString(logs.String()); line != "" {
			return line
		}
	}
	t.Fatalf("no access log line for request %s", id)
	return ""
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTracingSpansOneMutation: with tracing on, one createCustomer request is
// one trace: the request's span (named after the operation, with its name,
// type, request id and outcome) at the root, the root field's span under it,
// and under that one span per SQL statement, BEGIN, the gate's and the
// mutation's statements, COMMIT, with their SQL text and none of the
// arguments; the access log line carries the trace id.
func TestTracingSpansOneMutation(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "trace")
	org := srv.CreateOrg(t, owner, "Traced")
	ts, exp, logs := tracedServer(t)

	id := "trace-" + uuid.NewString()[:8]
	name, email := "Tracy "+uuid.NewString()[:8], apitest.UniqueEmail("tracy")
	apitest.MustOK(t, ts.PostHeaders(t, http.Header{"Authorization": {"Bearer " + owner.AccessToken}, "X-Request-Id": {id}},
		`mutation CreateCustomer($o: ID!, $in: CreateCustomerInput!) { createCustomer(orgId: $o, input: $in) { id name } }`,
		map[string]any{"o": org, "in": map[string]any{"name": name, "email": email}}))

	root, spans := requestSpan(t, exp, id)
	var tree strings.Builder
	for _, s := range spans {
		tree.WriteString(s.Name + " parent=" + s.Parent.SpanID().String() + " id=" + s.SpanContext.SpanID().String() + " " + attr(s, "db.statement") + "\n")
	}
	t.Logf("trace %s:\n%s", root.SpanContext.TraceID(), tree.String())

	if root.Parent.IsValid() {
		t.Errorf("request span has a parent %s: want the trace's root", root.Parent.SpanID())
	}
	for key, want := range map[string]string{"graphql.operation.name": "CreateCustomer", "graphql.operation.type": "mutation",
		"graphql.outcome.code": "OK", "http.response.status_code": "200", "request.id": id} {
		if got := attr(root, key); got != want {
			t.Errorf("request span %s = %q, want %q", key, got, want)
		}
	}
	if root.Name != "mutation CreateCustomer" {
		t.Errorf("request span named %q, want %q", root.Name, "mutation CreateCustomer")
	}
	var field tracetest.SpanStub
	var sql []tracetest.SpanStub
	for _, s := range spans {
		switch {
		case s.SpanContext.SpanID() == root.SpanContext.SpanID():
		case s.Name == "Mutation.createCustomer":
			field = s
		default:
			sql = append(sql, s)
		}
	}
	if field.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Fatalf("root field span Mutation.createCustomer missing or not a child of the request span:\n%s", tree.String())
	}
	slices.SortFunc(sql, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	var names []string
	for _, s := range sql {
		names = append(names, s.Name)
		if s.Parent.SpanID() != field.SpanContext.SpanID() {
			t.Errorf("span %s (%s) is not a child of the root field's span", s.Name, attr(s, "db.statement"))
		}
		if attr(s, "db.system") != "postgresql" {
			t.Errorf("span %s: db.system %q, want postgresql", s.Name, attr(s, "db.system"))
		}
		if st := attr(s, "db.statement"); (st == "") != (s.Name == "BEGIN" || s.Name == "COMMIT") {
			t.Errorf("span %s: db.statement %q", s.Name, st)
		}
	}
	begin, commit := slices.Index(names, "BEGIN"), slices.Index(names, "COMMIT")
	insert := slices.Index(names, "INSERT")
	if begin < 0 || !(begin < insert && insert < commit) || commit != len(names)-1 {
		t.Errorf("statement spans %v: want BEGIN ... INSERT ... COMMIT last", names)
	}
	for _, s := range spans {
		for _, a := range s.Attributes {
			v := strings.ToLower(a.Value.Emit())
			for _, secret := range []string{name, email, org.String()} {
				if strings.Contains(v, strings.ToLower(secret)) {
					t.Errorf("span %s attribute %s carries an argument's value %q", s.Name, a.Key, secret)
				}
			}
		}
	}

	line := accessLogLine(t, logs, id)
	if want := "trace_id=" + root.SpanContext.TraceID().String(); !strings.Contains(line, want) {
		t.Errorf("access log line %q lacks %s", line, want)
	}
}

// TestTracingFollowsTraceparent: a request with a W3C traceparent joins its
// trace (the BFF's), its sampled flag deciding (parent-based sampling): not
// sampled, the server records nothing and logs no trace id.
func TestTracingFollowsTraceparent(t *testing.T) {
	t.Parallel()
	viewer := srv.RegisterVerified(t, "traceparent")
	ts, exp, logs := tracedServer(t)
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

	id := "sampled-" + uuid.NewString()[:8]
	apitest.MustOK(t, ts.PostHeaders(t, http.Header{"Authorization": {"Bearer " + viewer.AccessToken}, "X-Request-Id": {id},
		"Traceparent": {"00-" + traceID + "-" + parent + "-01"}}, `query Me { me { id } }`, nil))
	root, spans := requestSpan(t, exp, id)
	if root.Name != "query Me" || root.SpanContext.TraceID().String() != traceID || root.Parent.SpanID().String() != parent || !root.Parent.IsRemote() {
		t.Errorf("request span %q in trace %s under %s (remote %v): want query Me in trace %s under the client's %s",
			root.Name, root.SpanContext.TraceID(), root.Parent.SpanID(), root.Parent.IsRemote(), traceID, parent)
	}
	if !slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return s.Name == "Query.me" }) {
		t.Errorf("no Query.me span in the trace")
	}

	id = "unsampled-" + uuid.NewString()[:8]
	other := strings.Replace(traceID, "4bf9", "5bf9", 1)
	apitest.MustOK(t, ts.PostHeaders(t, http.Header{"Authorization": {"Bearer " + viewer.AccessToken}, "X-Request-Id": {id},
		"Traceparent": {"00-" + other + "-" + parent + "-00"}}, `query Me { me { id } }`, nil))
	line := accessLogLine(t, logs, id)
	if strings.Contains(line, "trace_id=") {
		t.Errorf("access log line of an unsampled request: %q, want one without trace_id", line)
	}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() == other {
			t.Errorf("span %s recorded in a trace its client did not sample", s.Name)
		}
	}
}
