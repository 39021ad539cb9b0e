package app_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"tenantgraph/internal/account"
	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/notify"
)

// signedIn reports whether access passes a field that needs a viewer on s;
// it fails the test on any answer other than data or UNAUTHENTICATED.
func signedIn(t *testing.T, s *Server, access string) bool {
	t.Helper()
	r := s.Post(t, access, MeQuery, nil)
	switch r.Code() {
	case "":
		return true
	case "UNAUTHENTICATED":
		return false
	}
	t.Fatalf("me: %s", r.Raw)
	return false
}

// refusedWithin polls s until access is refused, and fails after d.
func refusedWithin(t *testing.T, s *Server, access string, d time.Duration) {
	t.Helper()
	start := time.Now()
	for signedIn(t, s, access) {
		if time.Since(start) > d {
			t.Fatalf("access token still accepted %s after its session ended", d)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("refused after %s", time.Since(start).Round(time.Millisecond))
}

func sessionOf(t *testing.T, access string) uuid.UUID {
	t.Helper()
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(access, &c); err != nil {
		t.Fatal(err)
	}
	sid, err := uuid.Parse(c["sid"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// Each way of ending sessions refuses their access tokens on the very next
// request, on the server that ended them. The replica without a listener hears
// no notification: only its own record of what it just committed can refuse.
func TestEndedSessionsAccessTokensStopAtOnce(t *testing.T) {
	t.Parallel()
	servers := map[string]*Server{"server": srv, "replica without listener": srv.Replica(t, ReplicaOptions{NoListener: true})}
	for name, s := range servers {
		t.Run(name, func(t *testing.T) {
			t.Run("logout", func(t *testing.T) {
				u := srv.Register(t, "endlogout")
				other := s.Login(t, u.Email, u.Password)
				if !signedIn(t, s, u.AccessToken) {
					t.Fatal("fresh access token refused")
				}
				MustOK(t, s.Post(t, "", LogoutMutation, map[string]any{"t": u.RefreshToken}))
				if signedIn(t, s, u.AccessToken) {
					t.Fatal("access token still works after logout")
				}
				if !signedIn(t, s, other.Access) {
					t.Fatal("logout ended another session")
				}
			})
			t.Run("logoutAll", func(t *testing.T) {
				u := srv.Register(t, "endall")
				other := s.Login(t, u.Email, u.Password)
				MustOK(t, s.Post(t, u.AccessToken, `mutation { logoutAll }`, nil))
				for _, access := range []string{u.AccessToken, other.Access} {
					if signedIn(t, s, access) {
						t.Fatal("access token still works after logoutAll")
					}
				}
			})
			t.Run("changePassword keeps the current session", func(t *testing.T) {
				u := srv.Register(t, "endchange")
				other := s.Login(t, u.Email, u.Password)
				MustOK(t, s.Post(t, u.AccessToken, ChangePasswordMutation, map[string]any{"c": u.Password, "n": "changed-pass-1"}))
				if signedIn(t, s, other.Access) {
					t.Fatal("another session's access token still works after changePassword")
				}
				if !signedIn(t, s, u.AccessToken) {
					t.Fatal("changePassword ended the current session")
				}
			})
			t.Run("resetPassword", func(t *testing.T) {
				u := srv.Register(t, "endreset")
				other := s.Login(t, u.Email, u.Password)
				MustOK(t, s.Post(t, "", RequestResetMutation, map[string]any{"e": u.Email}))
				tok := LinkToken(t, srv.WaitMail(t, u.Email, "Reset"), "reset-password")
				MustOK(t, s.Post(t, "", ResetMutation, map[string]any{"t": tok, "p": "brand-new-pass"}))
				for _, access := range []string{u.AccessToken, other.Access} {
					if signedIn(t, s, access) {
						t.Fatal("access token still works after resetPassword")
					}
				}
			})
		})
	}
}

// Two replicas on one database: what one ends, the other refuses within a second.
func TestEndedSessionsReachOtherReplicas(t *testing.T) {
	t.Parallel()
	replica := srv.Replica(t, ReplicaOptions{})
	u := srv.Register(t, "replicas")
	second := replica.Login(t, u.Email, u.Password)
	third := srv.Login(t, u.Email, u.Password)
	for _, s := range []*Server{srv, replica} {
		for _, access := range []string{u.AccessToken, second.Access, third.Access} {
			if !signedIn(t, s, access) {
				t.Fatal("fresh access token refused")
			}
		}
	}
	MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": u.RefreshToken}))
	refusedWithin(t, replica, u.AccessToken, time.Second)
	if !signedIn(t, replica, second.Access) {
		t.Fatal("logout ended another session on the replica")
	}
	// And the other way round.
	MustOK(t, replica.Post(t, second.Access, `mutation { logoutAll }`, nil))
	refusedWithin(t, srv, second.Access, time.Second)
	refusedWithin(t, srv, third.Access, time.Second)
}

// A replica started after a revocation knows it; one whose listener lost its
// connection loads what it may have missed once reconnected.
func TestRevokedSessionsLoadAtStartAndAfterReconnect(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "revload")
	MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": u.RefreshToken}))
	late := srv.Replica(t, ReplicaOptions{})
	if signedIn(t, late, u.AccessToken) {
		t.Fatal("a replica started after a logout accepts the session's access token")
	}

	name := "revload-" + uuid.NewString()[:8]
	replica := srv.Replica(t, ReplicaOptions{ApplicationName: name})
	v := srv.Login(t, u.Email, u.Password)
	// Revoked behind the service's back: no notification, as if it was lost.
	if _, err := srv.DB.Exec(`UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1`, sessionOf(t, v.Access)); err != nil {
		t.Fatal(err)
	}
	if !signedIn(t, replica, v.Access) {
		t.Fatal("the replica queried the database per request (or ended the session by itself)")
	}
	var n int
	if err := srv.DB.Get(&n, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, name); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("terminated %d listener connections, want 1", n)
	}
	refusedWithin(t, replica, v.Access, 10*time.Second)
}

// Concurrent refreshes of one token (two tabs) all get a pair in the same
// session, and the session lives on; it stays one session that ends as a whole.
func TestConcurrentRefreshOfOneToken(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "refrace")
	const n = 20
	results := make([]Tokens, n)
	resps := make([]Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], resps[i] = srv.Refresh(t, u.RefreshToken) })
	}
	wg.Wait()
	session := sessionOf(t, u.AccessToken)
	for i, r := range resps {
		MustOK(t, r)
		if got := sessionOf(t, results[i].Access); got != session {
			t.Fatalf("refresh %d moved to session %s, want %s", i, got, session)
		}
	}
	if !signedIn(t, srv, u.AccessToken) {
		t.Fatal("the session's access token was refused: concurrent refreshes ended the session")
	}
	// Every new refresh token works, once.
	next := make([]Tokens, n)
	for i, tk := range results {
		var r Response
		next[i], r = srv.Refresh(t, tk.Refresh)
		MustOK(t, r)
	}
	// Still one session: logout with any of its tokens ends all of them.
	MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": next[0].Refresh}))
	for _, tk := range next[1:] {
		_, r := srv.Refresh(t, tk.Refresh)
		WantCode(t, r, "UNAUTHENTICATED")
		if signedIn(t, srv, tk.Access) {
			t.Fatal("an access token of the ended session still works")
		}
	}
}

// Not parallel: moves the clock past the grace period.
func TestRefreshTokenReuseRevokesFamily(t *testing.T) {
	u := srv.Register(t, "reuse")
	other := srv.Login(t, u.Email, u.Password) // another session, unaffected
	next, r := srv.Refresh(t, u.RefreshToken)
	MustOK(t, r)
	// Within the grace period: a fresh pair in the same session.
	graced, r := srv.Refresh(t, u.RefreshToken)
	MustOK(t, r)
	if sessionOf(t, graced.Access) != sessionOf(t, next.Access) || graced.Refresh == next.Refresh {
		t.Fatal("a replay within the grace period did not get a fresh pair in the same session")
	}
	// The grace counts from the rotation, not from the last replay: 11 s after it
	// the replay is reuse and ends the session, every branch of it.
	undo := srv.Clock.Advance(11 * time.Second)
	defer undo()
	_, r = srv.Refresh(t, u.RefreshToken) // reuse
	WantCode(t, r, "UNAUTHENTICATED")
	for _, tk := range []Tokens{next, graced} {
		_, r = srv.Refresh(t, tk.Refresh)
		WantCode(t, r, "UNAUTHENTICATED")
		if signedIn(t, srv, tk.Access) {
			t.Fatal("an access token of the revoked session still works")
		}
	}
	_, r = srv.Refresh(t, other.Refresh)
	MustOK(t, r)
}

// A logout racing refreshes of the same session ends it all: no token issued
// by a refresh that committed during the logout survives it.
func TestLogoutRacingRefreshesLeavesNoLiveToken(t *testing.T) {
	t.Parallel()
	for range 10 {
		u := srv.Register(t, "logoutrace")
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if i == 5 {
					MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": u.RefreshToken}))
					return
				}
				srv.Refresh(t, u.RefreshToken) // before the logout: a pair; after: refused
			})
		}
		wg.Wait()
		var live int
		if err := srv.DB.Get(&live, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL`,
			sessionOf(t, u.AccessToken)); err != nil {
			t.Fatal(err)
		}
		if live != 0 {
			t.Fatalf("%d refresh tokens of the logged-out session still live", live)
		}
	}
}

// TestRevocationListenerIgnoresOtherReplicasProbes: each replica's watcher
// probes its LISTEN connection at start with a notification every replica
// receives; the others' probes are neither revocations nor bad payloads (which
// would make every replica reload the revocations on every start).
func TestRevocationListenerIgnoresOtherReplicasProbes(t *testing.T) {
	t.Parallel()
	replica := srv.Replica(t, ReplicaOptions{})
	if _, err := srv.DB.Exec(`SELECT pg_notify('session_revoked', 'probe:' || gen_random_uuid())`); err != nil {
		t.Fatal(err)
	}
	// A revocation after the probe: once the replica has it, it has read the probe.
	u := srv.Register(t, "probes")
	MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": u.RefreshToken}))
	refusedWithin(t, replica, u.AccessToken, time.Second)
	for _, s := range []*Server{srv, replica} {
		if strings.Contains(s.Logs(), "bad session revocation payload") {
			t.Fatalf("a probe was taken for a bad revocation payload:\n%s", s.Logs())
		}
	}
}

// TestRevocationListenerBehindATransactionPoolerIsNotReady: a LISTEN through
// PgBouncer in transaction mode succeeds but receives nothing, so a replica
// whose DATABASE_DIRECT_URL points there would accept the access tokens of
// sessions ended on other replicas. Its watcher never becomes ready (the
// server does not start) and says why. Runs under make test-pgbouncer.
func TestRevocationListenerBehindATransactionPoolerIsNotReady(t *testing.T) {
	t.Parallel()
	if srv.Config.DatabaseURL == srv.Config.DirectURL() {
		t.Skip("needs a pooler in front of PostgreSQL: make test-pgbouncer runs it")
	}
	cfg := srv.Config
	cfg.DatabaseDirectURL = cfg.DatabaseURL // the pooler's
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: log, Argon2: FastArgon2, RateLimits: &account.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Revocations.Run(ctx) }()
	go a.Hub.Run(ctx)
	defer func() { cancel(); <-done }()
	select {
	case <-a.Revocations.Ready():
		t.Fatal("the watcher listening through a transaction pooler became ready")
	case <-time.After(notify.ProbeTimeout + 3*time.Second):
	}
	if !strings.Contains(logs.String(), "the LISTEN connection receives no notifications") {
		t.Fatalf("the log does not say why the watcher is not ready:\n%s", logs.String())
	}
}
