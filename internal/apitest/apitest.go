// Package apitest runs the real server (the same app.App as the binary) on a
// real PostgreSQL database and speaks GraphQL to it over HTTP.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"tenantgraph/internal/account"
	"tenantgraph/internal/app"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/platform/mail"
)

// Secret is the JWT key the test server signs with, under the kid KeyID.
const (
	Secret = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	KeyID  = "test"
)

// FastArgon2 keeps tests quick; production uses auth.DefaultArgon2.
var FastArgon2 = auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Server is a running test server.
type Server struct {
	URL string
	// Client sends the requests; nil is http.DefaultClient (which keeps at most 2
	// idle connections per host: many concurrent requests open new ones).
	Client  *http.Client
	DB      *sqlx.DB
	Clock   *Clock
	MailDir string
	App     *app.App
	Config  config.Config
	logs    *SyncBuffer
	counts  *sync.Map // count key -> *db.Counter
	// gone counts requests whose client went away while they ran; inflight
	// those that have reached the server and not finished.
	gone, inflight *atomic.Int64
	mail           struct {
		sync.Mutex
		scanned time.Time
		seen    map[string]bool           // file names read
		byTo    map[string][]mail.Message // recipient -> messages, oldest first
	}
}

// ClientsGone is how many requests so far had their client go away while the
// server was still working on them (as the server saw it).
func (s *Server) ClientsGone() int64 { return s.gone.Load() }

// InFlight is how many requests the server is working on now.
func (s *Server) InFlight() int64 { return s.inflight.Load() }

const countHeader = "X-Test-Count-Statements"

// PostCounted sends one GraphQL request and returns how many SQL statements
// the server sent to PostgreSQL while serving it.
func (s *Server) PostCounted(t testing.TB, token, query string, vars map[string]any) (Response, int64) {
	t.Helper()
	r, c := s.PostCounter(t, token, query, vars)
	return r, c.Load()
}

// PostCounter sends one GraphQL request and returns the counter of the SQL
// statements sent on its behalf, to read later: one that moves after the
// answer counts work the request left running.
func (s *Server) PostCounter(t testing.TB, token, query string, vars map[string]any) (Response, *db.Counter) {
	t.Helper()
	key := uuid.NewString()
	r := s.PostHeaders(t, http.Header{"Authorization": bearer(token), countHeader: {key}}, query, vars)
	c, ok := s.counts.LoadAndDelete(key)
	if !ok {
		t.Fatal("statement counter missing")
	}
	return r, c.(*db.Counter)
}

// Main gives a test package its own database and server, exposed through *s.
func Main(m *testing.M, s **Server) { MainDB(m, s, nil) }

// MainDB is Main for a package whose tests also work on the database directly,
// bypassing the server (an area's invariant tests): the server and those tests
// share the package's one database, exposed through *d as well (when d is not
// nil), so that the package pays for one database clone, not two.
func MainDB(m *testing.M, s **Server, d **dbtest.Database) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	database, err := dbtest.New(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apitest:", err)
		os.Exit(1)
	}
	srv, stop, err := start(database.DB, database.URL, database.DirectURL, startOptions{mailWorker: true, listen: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "apitest:", err)
		database.Close()
		os.Exit(1)
	}
	*s = srv
	if d != nil {
		*d = database
	}
	code := m.Run()
	stop()
	database.Close()
	os.Exit(code)
}

// StartOptions shape a server of Start.
type StartOptions struct {
	// Metrics receives the server's series (app.Options.Metrics); nil: none.
	Metrics prometheus.Registerer
}

// Start runs a server of its own on database d (a database of
// dbtest.NewWith, such as one whose pool has a short statement timeout), as
// Main does for the package's: with the mail worker and the listener. It
// stops when t ends; the database stays the caller's.
func Start(t testing.TB, d *dbtest.Database, o StartOptions) *Server {
	t.Helper()
	s, stop, err := start(d.DB, d.URL, d.DirectURL, startOptions{mailWorker: true, listen: true, metrics: o.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

type startOptions struct {
	mailWorker bool // deliver the outbox (one server per database does)
	listen     bool // run the session revocation watcher, and wait until it is ready
	metrics    prometheus.Registerer
}

// ReplicaOptions shape a Replica.
type ReplicaOptions struct {
	// NoListener leaves out the session revocation watcher: the replica learns
	// only of the sessions it ends itself.
	NoListener bool
	// ApplicationName names the replica's connections (its listener's too) in pg_stat_activity.
	ApplicationName string
}

// Replica starts another server on s's database, as a second replica of the
// service would run: its own App, revoked-session set and listener, and no
// mail worker (s delivers the mail). It stops when t ends.
func (s *Server) Replica(t testing.TB, o ReplicaOptions) *Server {
	t.Helper()
	url, direct := s.Config.DatabaseURL, s.Config.DirectURL()
	if o.ApplicationName != "" {
		url, direct = withParam(url, "application_name", o.ApplicationName), withParam(direct, "application_name", o.ApplicationName)
	}
	r, stop, err := start(s.DB, url, direct, startOptions{listen: !o.NoListener})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return r
}

func withParam(url, key, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + key + "=" + value
}

// start builds a server whose pool is d (on url); its LISTEN connections go to direct.
func start(d *sqlx.DB, url, direct string, o startOptions) (*Server, func(), error) {
	dir, err := os.MkdirTemp("", "tenantgraph-mail-")
	if err != nil {
		return nil, nil, err
	}
	cfg := config.Config{
		Env: "development", DatabaseURL: url, DatabaseDirectURL: direct, JWTKeys: []config.JWTKey{{ID: KeyID, Secret: []byte(Secret)}},
		AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour,
		AppBaseURL: "http://app.test", MailDriver: "file", MailDir: dir, MailFrom: "tenantgraph <no-reply@test>",
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogSink()), nil))
	clock := &Clock{}
	// The package's tests all come from 127.0.0.1: no rate limits here
	// (TestCredentialEndpointsAreRateLimited builds a server with the defaults).
	a, err := app.New(app.Options{Config: cfg, DB: d, Log: log, Now: clock.Now, Argon2: FastArgon2,
		MailPollInterval: 50 * time.Millisecond, RateLimits: &account.Limits{}, Metrics: o.metrics})
	if err != nil {
		return nil, nil, err
	}
	counts := &sync.Map{}
	gone, inflight := &atomic.Int64{}, &atomic.Int64{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key := r.Header.Get(countHeader); key != "" {
			c := &db.Counter{}
			counts.Store(key, c)
			r = r.WithContext(db.WithCounter(r.Context(), c))
		}
		inflight.Add(1)
		defer inflight.Add(-1)
		var served atomic.Bool
		stop := context.AfterFunc(r.Context(), func() {
			if !served.Load() {
				gone.Add(1)
			}
		})
		a.Handler.ServeHTTP(w, r)
		served.Store(true)
		stop()
	}))
	wctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if o.mailWorker {
		wg.Go(func() { a.MailWorker.Run(wctx) })
	}
	if o.listen {
		wg.Go(func() { a.Hub.Run(wctx) })
		wg.Go(func() { a.Sealer.Run(wctx) })
		wg.Go(func() { a.Feed.Run(wctx) })
		wg.Go(func() { a.Revocations.Run(wctx) })
		select {
		case <-a.Revocations.Ready():
		case <-time.After(30 * time.Second):
			hs.Close()
			cancel()
			wg.Wait()
			os.RemoveAll(dir)
			return nil, nil, fmt.Errorf("session revocation watcher not ready after 30s")
		}
	}
	s := &Server{URL: hs.URL, DB: d, Clock: clock, MailDir: dir, App: a, Config: cfg, logs: logs, counts: counts, gone: gone, inflight: inflight}
	s.mail.seen = map[string]bool{}
	s.mail.byTo = map[string][]mail.Message{}
	return s, func() {
		hs.Close()
		cancel()
		wg.Wait()
		os.RemoveAll(dir)
	}, nil
}

func testLogSink() io.Writer {
	if os.Getenv("TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// Logs returns everything the server logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Clock is a controllable clock: real time plus an offset.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the shifted time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward; the returned func moves it back.
func (c *Clock) Advance(d time.Duration) (undo func()) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.offset -= d
		c.mu.Unlock()
	}
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
	Raw    string
}

// Code returns the first error's extensions.code, or "" when there is none.
func (r Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Field returns the first error's extensions.field.
func (r Response) Field() string {
	if len(r.Errors) == 0 {
		return ""
	}
	f, _ := r.Errors[0].Extensions["field"].(string)
	return f
}

// Decode unmarshals data into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// Post sends one GraphQL request as token (empty for anonymous).
func (s *Server) Post(t testing.TB, token, query string, vars map[string]any) Response {
	t.Helper()
	return s.PostHeaders(t, http.Header{"Authorization": bearer(token)}, query, vars)
}

func bearer(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"Bearer " + token}
}

// PostHeaders sends one GraphQL request with extra headers.
func (s *Server) PostHeaders(t testing.TB, h http.Header, query string, vars map[string]any) Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST /query: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := Response{Status: res.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not JSON (%d): %s", res.StatusCode, raw)
	}
	return out
}

// MustOK fails the test when r has errors.
func MustOK(t testing.TB, r Response) Response {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %s", r.Raw)
	}
	return r
}

// Session is a signed-in user.
type Session struct {
	UserID       uuid.UUID
	Email        string
	Password     string
	AccessToken  string
	RefreshToken string
}

// UniqueEmail returns a fresh address for prefix.
func UniqueEmail(prefix string) string {
	return fmt.Sprintf("%s-%s@example.test", prefix, uuid.NewString()[:8])
}

const registerSessionMutation = `mutation($in: RegisterInput!) { register(input: $in) {
	accessToken refreshToken user { id email } } }`

// Register signs up a new user (unverified).
func (s *Server) Register(t testing.TB, prefix string) *Session {
	t.Helper()
	email := UniqueEmail(prefix)
	pw := "correct horse battery"
	r := MustOK(t, s.Post(t, "", registerSessionMutation, map[string]any{"in": map[string]any{"email": email, "password": pw, "name": prefix}}))
	var out struct {
		Register struct {
			AccessToken, RefreshToken string
			User                      struct{ ID uuid.UUID }
		}
	}
	r.Decode(t, &out)
	return &Session{UserID: out.Register.User.ID, Email: email, Password: pw,
		AccessToken: out.Register.AccessToken, RefreshToken: out.Register.RefreshToken}
}

// RegisterVerified signs up a user and verifies their email with the emailed link.
func (s *Server) RegisterVerified(t testing.TB, prefix string) *Session {
	t.Helper()
	u := s.Register(t, prefix)
	tok := LinkToken(t, s.WaitMail(t, u.Email, "Verify"), "verify-email")
	MustOK(t, s.Post(t, "", `mutation($t: String!) { verifyEmail(token: $t) { id } }`, map[string]any{"t": tok}))
	return u
}

// Mails returns every message sent to addr so far, oldest first.
func (s *Server) Mails(t testing.TB, addr string) []mail.Message {
	t.Helper()
	s.mail.Lock()
	defer s.mail.Unlock()
	// Many tests wait for mail at once: read the folder at most every few
	// milliseconds, and parse each file once (files never change once written).
	if time.Since(s.mail.scanned) > 3*time.Millisecond {
		entries, err := os.ReadDir(s.MailDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries { // names start with the send time: sorted oldest first
			name := e.Name()
			if !strings.HasSuffix(name, ".eml") || s.mail.seen[name] {
				continue
			}
			m, err := mail.ParseFile(filepath.Join(s.MailDir, name))
			if err != nil {
				t.Fatalf("parse %s: %v", name, err)
			}
			s.mail.seen[name] = true
			to := strings.ToLower(m.To)
			s.mail.byTo[to] = append(s.mail.byTo[to], m)
		}
		s.mail.scanned = time.Now()
	}
	return append([]mail.Message(nil), s.mail.byTo[strings.ToLower(addr)]...)
}

// WaitMail waits (up to 10 s) for the newest message to addr whose subject
// contains subject, counting only messages beyond those already seen with it.
func (s *Server) WaitMail(t testing.TB, addr, subject string) mail.Message {
	t.Helper()
	return s.WaitMailN(t, addr, subject, 1)
}

// WaitMailN waits for the n-th message to addr with subject and returns it.
func (s *Server) WaitMailN(t testing.TB, addr, subject string, n int) mail.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var hits []mail.Message
		for _, m := range s.Mails(t, addr) {
			if strings.Contains(m.Subject, subject) {
				hits = append(hits, m)
			}
		}
		if len(hits) >= n {
			return hits[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %d %q to %s after 10s (have %d)", n, subject, addr, len(hits))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LinkToken extracts the token of the link to path from a message body.
func LinkToken(t testing.TB, m mail.Message, path string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(path) + `\?token=([A-Za-z0-9_-]+)`)
	sub := re.FindStringSubmatch(m.Body)
	if sub == nil {
		t.Fatalf("no %s link in mail body:\n%s", path, m.Body)
	}
	return sub[1]
}

// SyncBuffer is a buffer that goroutines may write to (a server's log) while
// a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
