package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/db"
)

func get(t *testing.T, u string, h http.Header) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, u, h, "")
}

// do makes one HTTP request with headers h and returns the response (its body
// read and closed) and the body.
func do(t *testing.T, method, u string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	if res, body := get(t, srv.URL+"/healthz", nil); res.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", res.StatusCode, body)
	}
	want, err := db.ExpectedVersion()
	if err != nil {
		t.Fatal(err)
	}
	wantBody := fmt.Sprintf(`{"status":"ready","schemaVersion":%d,"expectedSchemaVersion":%d}`+"\n", want, want)
	if res, body := get(t, srv.URL+"/readyz", nil); res.StatusCode != 200 || body != wantBody {
		t.Fatalf("GET /readyz = %d %q, want 200 %q", res.StatusCode, body, wantBody)
	}
}

func TestRequestIDIsEchoedAndGenerated(t *testing.T) {
	t.Parallel()
	res, _ := get(t, srv.URL+"/healthz", http.Header{"X-Request-Id": {"client-supplied-123"}})
	if got := res.Header.Get("X-Request-Id"); got != "client-supplied-123" {
		t.Fatalf("X-Request-Id = %q", got)
	}
	res, _ = get(t, srv.URL+"/healthz", http.Header{"X-Request-Id": {"bad id with spaces"}})
	if got := res.Header.Get("X-Request-Id"); len(got) < 16 || strings.Contains(got, " ") {
		t.Fatalf("generated X-Request-Id = %q", got)
	}
}

func TestGETTransportServesQueries(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "get")
	res, body := get(t, srv.URL+"/query?query="+url.QueryEscape(`{ me { email } }`), http.Header{"Authorization": {"Bearer " + u.AccessToken}})
	if res.StatusCode != 200 || !strings.Contains(body, u.Email) {
		t.Fatalf("GET /query = %d %s", res.StatusCode, body)
	}
}

func TestRequestBodyOverOneMiBIsRefused(t *testing.T) {
	t.Parallel()
	big := `{"query":"{ me { id } }","variables":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	res, err := http.Post(srv.URL+"/query", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"code":"BAD_USER_INPUT"`) {
		t.Fatalf("a body over 1 MiB: %d %s", res.StatusCode, body)
	}
	// Without a declared length, reading stops at the limit and the request is not executed.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/query", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	body, _ = io.ReadAll(res2.Body)
	if !strings.Contains(string(body), "errors") || strings.Contains(string(body), `"data":{"me"`) {
		t.Fatalf("a chunked body over 1 MiB: %d %s", res2.StatusCode, body)
	}
	// Just under the limit is fine.
	ok := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 1<<19) + `"}}`
	res3, err := http.Post(srv.URL+"/query", "application/json", strings.NewReader(ok))
	if err != nil {
		t.Fatal(err)
	}
	res3.Body.Close()
	if res3.StatusCode != 200 {
		t.Fatalf("a 512 KiB body: %d", res3.StatusCode)
	}
}

func TestQueryLimitsAndValidationErrorsCarryCodes(t *testing.T) {
	t.Parallel()
	r := srv.Post(t, "", `{ me { nope } }`, nil)
	if r.Code() == "" {
		t.Fatalf("validation error without a code: %s", r.Raw)
	}
	r = srv.Post(t, "", `{ me { id `, nil)
	if r.Code() == "" {
		t.Fatalf("parse error without a code: %s", r.Raw)
	}
	// Over the parser token limit.
	r = srv.Post(t, "", "{ "+strings.Repeat("__typename ", 20000)+"}", nil)
	if len(r.Errors) == 0 || r.Code() == "" {
		t.Fatalf("huge query accepted or uncoded: %.300s", r.Raw)
	}
}

func TestProductionModeHidesSchema(t *testing.T) {
	t.Parallel()
	cfg := srv.Config
	cfg.Env = "production"
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	post := func(q string) string {
		res, err := http.Post(hs.URL+"/query", "application/json", bytes.NewReader([]byte(`{"query":`+q+`}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if body := post(`"{ __schema { types { name } } }"`); !strings.Contains(body, "errors") || strings.Contains(body, `"AuthPayload"`) {
		t.Fatalf("introspection answered in production: %.300s", body)
	}
	if body := post(`"{ mee { id } }"`); strings.Contains(body, "Did you mean") {
		t.Fatalf("field suggestions in production: %s", body)
	}
	if res, _ := get(t, hs.URL+"/", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("explorer served in production: %d", res.StatusCode)
	}
	// Development serves both.
	if res, body := get(t, srv.URL+"/", nil); res.StatusCode != 200 || !strings.Contains(body, "/query") {
		t.Fatalf("explorer not served in development: %d", res.StatusCode)
	}
	if r := srv.Post(t, "", `{ mee { id } }`, nil); !strings.Contains(r.Raw, "Did you mean") {
		t.Fatalf("no suggestion in development: %s", r.Raw)
	}
}

func TestCORSAllowsConfiguredOriginsOnly(t *testing.T) {
	t.Parallel()
	cfg := srv.Config
	cfg.CORSOrigins = []string{"https://app.example.com"}
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	preflight := func(origin string) string {
		req, _ := http.NewRequest(http.MethodOptions, hs.URL+"/query", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get("Access-Control-Allow-Origin")
	}
	if got := preflight("https://app.example.com"); got != "https://app.example.com" {
		t.Fatalf("allowed origin got %q", got)
	}
	if got := preflight("https://evil.example.com"); got != "" {
		t.Fatalf("other origin got %q", got)
	}
}

func TestCredentialEndpointsAreRateLimited(t *testing.T) {
	t.Parallel()
	// A server with the default limits (the shared test server has none), on a
	// stopped clock: the buckets refill with time, and on a loaded machine the
	// test's 80 requests took long enough (4-11 s) for a refill to let the 31st
	// login through.
	stopped := time.Now()
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2,
		Now: func() time.Time { return stopped }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	limited := &apitest.Server{URL: hs.URL}
	known := srv.Register(t, "limited")
	loginAs := func(email string) string {
		return limited.Post(t, "", apitest.LoginMutation, map[string]any{"e": email, "p": "wrong-password"}).Code()
	}

	// 5 attempts per email from one address, whether or not the account exists;
	// the 6th is refused.
	unknown := apitest.UniqueEmail("nobody")
	for _, email := range []string{known.Email, unknown} {
		for i := range 5 {
			if c := loginAs(email); c != "UNAUTHENTICATED" {
				t.Fatalf("%s attempt %d: %s", email, i+1, c)
			}
		}
		if c := loginAs(strings.ToUpper(email)); c != "RATE_LIMITED" {
			t.Fatalf("%s attempt 6: %s, want RATE_LIMITED", email, c)
		}
	}
	// Even the right password waits now, from this address.
	if c := limited.Post(t, "", apitest.LoginMutation, map[string]any{"e": known.Email, "p": known.Password}).Code(); c != "RATE_LIMITED" {
		t.Fatalf("right password while limited: %s", c)
	}
	// 30 attempts per address: other emails get 17 more, then the address is refused.
	for i := range 17 {
		if c := loginAs(apitest.UniqueEmail("spray")); c != "UNAUTHENTICATED" {
			t.Fatalf("spray attempt %d: %s", i+1, c)
		}
	}
	if c := loginAs(apitest.UniqueEmail("spray")); c != "RATE_LIMITED" {
		t.Fatalf("31st attempt from one address: %s, want RATE_LIMITED", c)
	}

	// Password reset requests: 10 per address.
	for range 10 {
		apitest.MustOK(t, limited.Post(t, "", apitest.RequestResetMutation, map[string]any{"e": apitest.UniqueEmail("reset")}))
	}
	if c := limited.Post(t, "", apitest.RequestResetMutation, map[string]any{"e": known.Email}).Code(); c != "RATE_LIMITED" {
		t.Fatalf("11th reset request: %s, want RATE_LIMITED", c)
	}

	// Sign-ups: 20 per address; the 21st is refused and creates nothing.
	for range 20 {
		apitest.MustOK(t, limited.Post(t, "", apitest.RegisterMutation, map[string]any{"in": map[string]any{"email": apitest.UniqueEmail("signup"), "password": "long-enough", "name": "S"}}))
	}
	email := apitest.UniqueEmail("signup21")
	if c := limited.Post(t, "", apitest.RegisterMutation, map[string]any{"in": map[string]any{"email": email, "password": "long-enough", "name": "S"}}).Code(); c != "RATE_LIMITED" {
		t.Fatalf("21st sign-up: %s, want RATE_LIMITED", c)
	}
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM users WHERE email = $1`, email); err != nil || n != 0 {
		t.Fatalf("refused sign-up created %d users (%v)", n, err)
	}
}

func TestPurgeRemovesOnlyLongDeadRows(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "purge")
	old := time.Now().Add(-31 * 24 * time.Hour)
	recent := time.Now().Add(-29 * 24 * time.Hour)
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := srv.DB.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() []byte { b := make([]byte, 32); copy(b, uuid.New().String()); return b }
	// Dead long ago: purged. Dead recently, or alive: kept.
	mustExec(`INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)`, u.UserID, uuid.New(), hash(), old)
	mustExec(`INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at, revoked_at) VALUES ($1, $2, $3, now() + interval '1 day', $4)`, u.UserID, uuid.New(), hash(), old)
	mustExec(`INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at, revoked_at) VALUES ($1, $2, $3, now() + interval '1 day', $4)`, u.UserID, uuid.New(), hash(), recent)
	mustExec(`INSERT INTO user_tokens (user_id, purpose, token_hash, expires_at, used_at) VALUES ($1, 'reset_password', $2, $3, NULL)`, u.UserID, hash(), old)
	mustExec(`INSERT INTO user_tokens (user_id, purpose, token_hash, expires_at, used_at) VALUES ($1, 'reset_password', $2, now() + interval '1 hour', $3)`, u.UserID, hash(), recent)
	mustExec(`INSERT INTO mail_outbox (recipient, subject, body, status, created_at) VALUES ($1, 'old', 'x', 'sent', $2)`, u.Email, old)
	mustExec(`INSERT INTO mail_outbox (recipient, subject, body, status, created_at, next_attempt_at) VALUES ($1, 'old pending', 'x', 'pending', $2, now() + interval '1 day')`, u.Email, old)
	mustExec(`INSERT INTO mail_outbox (recipient, subject, body, status, created_at) VALUES ($1, 'recent', 'x', 'sent', $2)`, u.Email, recent)

	if err := srv.App.PurgeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rt, ut int
	var subjects []string
	if err := srv.DB.Get(&rt, `SELECT count(*) FROM refresh_tokens WHERE user_id = $1`, u.UserID); err != nil {
		t.Fatal(err)
	}
	if err := srv.DB.Get(&ut, `SELECT count(*) FROM user_tokens WHERE user_id = $1 AND purpose = 'reset_password'`, u.UserID); err != nil {
		t.Fatal(err)
	}
	if err := srv.DB.Select(&subjects, `SELECT subject FROM mail_outbox WHERE recipient = $1 AND subject <> 'Verify your email for tenantgraph' ORDER BY subject`, u.Email); err != nil {
		t.Fatal(err)
	}
	// Kept: the registration's live refresh token and the recently revoked one; the recent reset token; pending and recent mail.
	if rt != 2 || ut != 1 || fmt.Sprint(subjects) != "[old pending recent]" {
		t.Fatalf("after purge: %d refresh tokens, %d reset tokens, mail %v", rt, ut, subjects)
	}
}
