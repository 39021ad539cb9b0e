package app_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"tenantgraph/internal/account"
	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/config"
)

// kidOf returns the kid header of an access token.
func kidOf(t *testing.T, tok string) any {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("parse %q: %v", tok, err)
	}
	return p.Header["kid"]
}

// keyServer is another server on the test database that differs from srv only in its JWT keys.
func keyServer(t *testing.T, keys ...config.JWTKey) *Server {
	t.Helper()
	cfg := srv.Config
	cfg.JWTKeys = keys
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: srv.Clock.Now, Argon2: FastArgon2, RateLimits: &account.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL}
}

// TestJWTKeyRotation: JWT_SECRETS="2026-11:<new>,test:<old>" signs with the new key
// and still accepts the tokens of the old one; once the old key leaves the list, its
// tokens are refused.
func TestJWTKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey := config.JWTKey{ID: KeyID, Secret: []byte(Secret)}
	newKey := config.JWTKey{ID: "2026-11", Secret: []byte(strings.Repeat("n", 40))}
	rotated := keyServer(t, newKey, oldKey)
	retired := keyServer(t, newKey)
	meOn := func(s *Server, tok string) Response { return s.Post(t, tok, MeQuery, nil) }

	u := srv.Register(t, "rotate") // signed by srv, which knows only the old key
	oldTok := u.AccessToken
	if kidOf(t, oldTok) != KeyID {
		t.Fatalf("kid %v, want %q", kidOf(t, oldTok), KeyID)
	}
	var m MeData
	MustOK(t, meOn(rotated, oldTok)).Decode(t, &m)
	if m.Me == nil || m.Me.ID != u.UserID {
		t.Fatalf("old token on the rotated server: %+v", m.Me)
	}

	// The rotated server signs with the first key listed.
	r := MustOK(t, rotated.Post(t, "", LoginMutation, map[string]any{"e": u.Email, "p": u.Password}))
	var out struct{ Login struct{ AccessToken string } }
	r.Decode(t, &out)
	newTok := out.Login.AccessToken
	if kidOf(t, newTok) != newKey.ID {
		t.Fatalf("kid %v, want %q", kidOf(t, newTok), newKey.ID)
	}
	MustOK(t, meOn(rotated, newTok))
	MustOK(t, meOn(retired, newTok))
	WantCode(t, meOn(srv, newTok), "UNAUTHENTICATED") // a replica that does not list the key yet

	// The old key leaves the list: its tokens stop working, though not yet expired.
	WantCode(t, meOn(retired, oldTok), "UNAUTHENTICATED")
	MustOK(t, meOn(srv, oldTok))

	// A token must be signed by the key its kid names.
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(newTok, claims); err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	forged.Header["kid"] = oldKey.ID
	s, err := forged.SignedString(newKey.Secret)
	if err != nil {
		t.Fatal(err)
	}
	WantCode(t, meOn(rotated, s), "UNAUTHENTICATED")
}
