package app_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

// TestSecurityHeaders: every response says X-Content-Type-Options: nosniff, and every
// response of the GraphQL endpoint (tokens, private data, errors alike) Cache-Control: no-store.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "headers")
	login := jsonBody(`mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`,
		map[string]any{"variables": map[string]any{"e": u.Email, "p": u.Password}})
	for _, tc := range []struct {
		name, method, path, contentType, body string
		status                                int
		noStore                               bool
	}{
		{"login (tokens)", http.MethodPost, "/query", "application/json", login, 200, true},
		{"the same on /graphql", http.MethodPost, "/graphql", "application/json", login, 200, true},
		{"a query over GET", http.MethodGet, "/query?query=%7B__typename%7D", "", "", 200, true},
		{"a refused operation", http.MethodPost, "/query", "application/json", `{"query":"{ nope }"}`, 200, true},
		{"a malformed request", http.MethodPost, "/query", "application/json", `[]`, 400, true},
		{"an unsupported Content-Type", http.MethodPost, "/query", "text/plain", `{}`, 415, true},
		{"a body over the limit", http.MethodPost, "/query", "application/json", strings.Repeat(" ", app.MaxBodyBytes+1), 413, true},
		{"health", http.MethodGet, "/healthz", "", "", 200, false},
		{"readiness", http.MethodGet, "/readyz", "", "", 200, false},
		{"the explorer", http.MethodGet, "/", "", "", 200, false},
		{"not found", http.MethodGet, "/nope", "", "", 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.200s", res.StatusCode, tc.status, b)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := res.Header.Get("Cache-Control"); tc.noStore && got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

// TestProductionRefusesIntrospectionCleanly: introspection in production is a
// documented refusal (GRAPHQL_VALIDATION_FAILED, "introspection is disabled"), not an
// internal error, and logs no ERROR line.
func TestProductionRefusesIntrospectionCleanly(t *testing.T) {
	t.Parallel()
	cfg := srv.Config
	cfg.Env = "production"
	logs := &apitest.SyncBuffer{}
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(logs, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	for _, q := range []string{`{ __schema { types { name } } }`, `{ __type(name: "User") { name } }`, `{ me { id } a: __schema { queryType { name } } }`} {
		r := send(t, http.MethodPost, hs.URL+"/query", asJSON, jsonBody(q, nil))
		if c := r.code(t); c != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(r.Body, "introspection is disabled") || r.Status != 200 {
			t.Fatalf("%s: %d %s", q, r.Status, r.Body)
		}
		if _, ok := r.JSON["data"]; ok {
			t.Fatalf("%s: a data entry: %s", q, r.Body)
		}
	}
	// __typename is not introspection.
	if r := send(t, http.MethodPost, hs.URL+"/query", asJSON, jsonBody(`{ __typename }`, nil)); !strings.Contains(r.Body, `"__typename":"Query"`) {
		t.Fatalf("__typename in production: %s", r.Body)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "level=INFO") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}
