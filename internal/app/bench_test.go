package app_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tenantgraph/internal/account"
	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

// BenchmarkDashboardQuery measures the organizations dashboard query (20
// organizations of 10 members, with role, owner, count and the first members
// page: a 30 KB response) end to end through HTTP and PostgreSQL, client and
// server on the same 2 cores. Goals: exactly 3 SQL statements (the
// organizations, their owners, their members pages with their counts), and the
// time per request and allocations per request of the table in
// docs/testing.md, "Benchmarks".
func BenchmarkDashboardQuery(b *testing.B) {
	srv.BenchQuery(b, seedDashboardViewer(b, "bench", 20, 9).AccessToken, dashboardQuery, nil, 3)
}

// BenchmarkMe measures the smallest authenticated request: JWT check, one user
// lookup (at once: loader's Keyed.Now, no batch wait). Goal: under 1 ms
// (before the loaders' Now, it waited the loaders' 2 ms batch window: 3.3 ms).
func BenchmarkMe(b *testing.B) {
	u := srv.Register(b, "benchme")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := srv.Post(b, u.AccessToken, `{ me { id email } }`, nil); len(r.Errors) > 0 {
			b.Fatal(r.Raw)
		}
	}
}

// BenchmarkTrivialQueryUnderCredentialFlood measures a trivial query's latency
// idle and while 16 goroutines hammer login with wrong passwords (production
// argon2 parameters, rate limits off so that every login reaches the hasher), in
// 4 alternating rounds of each so that the machine's other load weighs on both
// alike. Goal: the flood p99 stays under 3x the idle p99 on 2 cores: the hasher
// runs at most auth.DefaultHashConcurrency() computations at once, and a login
// that waits over auth.HashWait for its turn gives up with RATE_LIMITED. This
// benchmark hashes in process (on a thread of the lowest priority), sharing the
// Go runtime and collector with the queries, and does not meet the goal (about
// 5x); the server binary hashes in worker processes, and the load test (make
// loadtest, docs/testing.md "Load test") is the measurement that counts for the goal.
// One iteration takes about 10 s.
func BenchmarkTrivialQueryUnderCredentialFlood(b *testing.B) {
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimits: &account.Limits{}}) // zero Argon2: auth.DefaultArgon2
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	// The trivial queries and the flood each keep their own connections alive, so
	// that neither measures the opening of connections.
	keepAlive := func(n int) *http.Client {
		return &http.Client{Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n}}
	}
	s := &apitest.Server{URL: hs.URL, Client: keepAlive(1)}
	floodSrv := &apitest.Server{URL: hs.URL, Client: keepAlive(16)}
	trivial := func() time.Duration {
		time.Sleep(time.Millisecond) // a steady trickle, not a second flood
		start := time.Now()
		if r := s.Post(b, "", `{ __typename }`, nil); len(r.Errors) > 0 {
			b.Fatal(r.Raw)
		}
		return time.Since(start)
	}
	pct := func(d []time.Duration, p int) time.Duration {
		d = slices.Sorted(slices.Values(d))
		return d[(len(d)*p+99)/100-1]
	}
	var idle, flood []time.Duration
	var logins, busy atomic.Int64
	for b.Loop() {
		idle, flood = nil, nil
		for range 4 {
			// Both phases sample for the same time, so that their p99s rest on as
			// many requests.
			for start := time.Now(); time.Since(start) < time.Second || len(idle)%100 != 0; {
				idle = append(idle, trivial())
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						r := floodSrv.Post(b, "", apitest.LoginMutation, map[string]any{"e": fmt.Sprintf("flood-%d-%d@example.test", g, i), "p": "wrong-password"})
						logins.Add(1)
						if r.Code() == "RATE_LIMITED" {
							busy.Add(1)
						}
					}
				})
			}
			time.Sleep(300 * time.Millisecond) // the hasher busy, its queue full
			for start := time.Now(); time.Since(start) < time.Second || len(flood)%100 != 0; {
				flood = append(flood, trivial())
			}
			close(stop)
			wg.Wait()
		}
	}
	idleP99, floodP99 := pct(idle, 99), pct(flood, 99)
	b.ReportMetric(float64(pct(idle, 50).Microseconds())/1000, "idle-p50-ms")
	b.ReportMetric(float64(idleP99.Microseconds())/1000, "idle-p99-ms")
	b.ReportMetric(float64(pct(flood, 50).Microseconds())/1000, "flood-p50-ms")
	b.ReportMetric(float64(floodP99.Microseconds())/1000, "flood-p99-ms")
	b.ReportMetric(float64(floodP99)/float64(idleP99), "p99-ratio")
	b.ReportMetric(float64(logins.Load())/float64(b.N), "logins")
	b.ReportMetric(float64(busy.Load())/float64(b.N), "logins-busy")
	// Like the other benchmarks' goals, the 3x is reported, not enforced: the
	// machine's other load moves both figures.
	b.Logf("idle p50 %v p99 %v; flood p50 %v p99 %v (%.1fx; goal under 3x); %d logins, %d gave up waiting",
		pct(idle, 50), idleP99, pct(flood, 50), floodP99, float64(floodP99)/float64(idleP99), logins.Load(), busy.Load())
}
