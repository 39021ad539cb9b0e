package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/config"
)

// corsServer serves an App configured the way the binary is, by config.Load,
// from a clean environment plus env (t.Setenv: these tests cannot run in parallel).
func corsServer(t *testing.T, env map[string]string) *httptest.Server {
	t.Helper()
	key := sha256.Sum256([]byte("cors test key"))
	base := map[string]string{
		"APP_ENV": "development", "DATABASE_URL": srv.Config.DatabaseURL, "DATABASE_DIRECT_URL": "",
		"DATA_DIR": t.TempDir(), "JWT_SECRETS": "", "JWT_SECRET": hex.EncodeToString(key[:]),
		"MAIL_DRIVER": "file", "MAIL_DIR": t.TempDir(), "CORS_ALLOWED_ORIGINS": "", "TRUSTED_DOCUMENTS": "",
		"PPROF_ADDR": "", "METRICS_ADDR": "",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return hs
}

// preflight sends the OPTIONS request a browser sends before a POST with a JSON
// body and a bearer token, and returns the response's Access-Control-Allow-Origin
// and Access-Control-Allow-Headers.
func preflight(t *testing.T, hs *httptest.Server, origin, requestHeaders string) (allowOrigin, allowHeaders string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, hs.URL+"/query", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", requestHeaders)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Allow-Headers")
}

// corsPost sends { __typename } from origin, as fetch() does after the preflight,
// and returns the response's Access-Control-Allow-Origin.
func corsPost(t *testing.T, hs *httptest.Server, origin string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/query", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Origin", origin)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"__typename":"Query"`) {
		t.Fatalf("POST from %s: %d %s", origin, res.StatusCode, body)
	}
	return res.Header.Get("Access-Control-Allow-Origin")
}

// TestCORSDevelopmentAllowsLocalDevServers: `make run` (development) without
// CORS_ALLOWED_ORIGINS answers a front end's development server on any port of
// http://localhost or http://127.0.0.1, and nothing else.
func TestCORSDevelopmentAllowsLocalDevServers(t *testing.T) {
	hs := corsServer(t, nil)
	for _, origin := range []string{"http://localhost:5173", "http://127.0.0.1:3000", "http://localhost", "http://localhost:65535"} {
		if got, _ := preflight(t, hs, origin, "authorization,content-type"); got != origin {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want it allowed", origin, got)
		}
		if got := corsPost(t, hs, origin); got != origin {
			t.Errorf("POST from %s: Access-Control-Allow-Origin %q, want it allowed", origin, got)
		}
	}
	for _, origin := range []string{
		"http://localhost.evil.com", "http://example.com", "http://localhost.evil.com:5173",
		"http://localhost:5173.evil.com", "http://localhost:5173@evil.com", "http://127.0.0.1.nip.io:3000",
		"https://localhost:5173", "http://localhost:0", "http://localhost:65536", "http://[::1]:5173", "null",
	} {
		if got, _ := preflight(t, hs, origin, "authorization,content-type"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want none", origin, got)
		}
		if got := corsPost(t, hs, origin); got != "" {
			t.Errorf("POST from %s: Access-Control-Allow-Origin %q, want none", origin, got)
		}
	}
}

// TestCORSPreflightHeadersInAnyOrderOrCase: browsers list the request headers in
// lower case and in order; a hand-written client or a proxy may not. Both get the
// same answer, and a header outside the allowed ones is still refused.
func TestCORSPreflightHeadersInAnyOrderOrCase(t *testing.T) {
	hs := corsServer(t, nil)
	const origin = "http://localhost:5173"
	for _, h := range []string{
		"authorization,content-type", "Content-Type, Authorization", "content-type,authorization",
		"AUTHORIZATION , Content-Type", "Content-Type,Authorization,content-type", "authorization",
		"Content-Type, X-Request-Id, Authorization",
	} {
		got, allowHeaders := preflight(t, hs, origin, h)
		if got != origin {
			t.Errorf("Access-Control-Request-Headers %q: Access-Control-Allow-Origin %q, want %s", h, got, origin)
		}
		for _, name := range strings.Split(strings.ToLower(h), ",") {
			if !strings.Contains(allowHeaders, strings.TrimSpace(name)) {
				t.Errorf("Access-Control-Request-Headers %q: Access-Control-Allow-Headers %q lacks %s", h, allowHeaders, name)
			}
		}
	}
	for _, h := range []string{"Content-Type, Authorization, X-Evil", "x-evil"} {
		if got, _ := preflight(t, hs, origin, h); got != "" {
			t.Errorf("Access-Control-Request-Headers %q: Access-Control-Allow-Origin %q, want none", h, got)
		}
	}
}

// TestCORSListedOriginsOnly: with CORS_ALLOWED_ORIGINS set, only its origins are
// allowed, in development too; production without it allows none.
func TestCORSListedOriginsOnly(t *testing.T) {
	key := sha256.Sum256([]byte("another cors test key"))
	prod := map[string]string{"APP_ENV": "production", "JWT_SECRET": hex.EncodeToString(key[:])}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		allowed []string
		refused []string
	}{
		{"production, unset", prod, nil, []string{"http://localhost:5173", "http://127.0.0.1:3000", "https://app.example.com"}},
		{"production, listed", with(prod, "CORS_ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com"),
			[]string{"https://app.example.com", "https://admin.example.com"},
			[]string{"http://localhost:5173", "https://evil.example.com", "http://app.example.com"}},
		{"development, listed", map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com"},
			[]string{"https://app.example.com"}, []string{"http://localhost:5173", "http://127.0.0.1:3000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := corsServer(t, tc.env)
			for _, origin := range tc.allowed {
				if got, _ := preflight(t, hs, origin, "Content-Type, Authorization"); got != origin {
					t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want it allowed", origin, got)
				}
			}
			for _, origin := range tc.refused {
				if got, _ := preflight(t, hs, origin, "authorization,content-type"); got != "" {
					t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want none", origin, got)
				}
				if got := corsPost(t, hs, origin); got != "" {
					t.Errorf("POST from %s: Access-Control-Allow-Origin %q, want none", origin, got)
				}
			}
		})
	}
}

func with(m map[string]string, k, v string) map[string]string {
	c := map[string]string{k: v}
	for k, v := range m {
		if _, set := c[k]; !set {
			c[k] = v
		}
	}
	return c
}
