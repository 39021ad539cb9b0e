package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/account"
	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

// admissionServer starts a server of its own (ownServer) with the request
// admission limits set (docs/api.md, "Request admission") and its clock stopped at
// *now (the rate's refill moves only when the test moves *now, under mu).
func admissionServer(t *testing.T, rate, perClient, total int, now *time.Time, mu *sync.Mutex) *apitest.Server {
	t.Helper()
	s, _ := ownServer(t, func(o *app.Options) {
		o.Config.ClientRequestsPerSecond, o.Config.ClientConcurrentRequests, o.Config.MaxConcurrentRequests = rate, perClient, total
		o.RateLimits = &account.Limits{}
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return *now }
	})
	return s
}

// wantAdmissionRefusal checks r is the refusal of limit: status, code and limit.
func wantAdmissionRefusal(t *testing.T, r apitest.Response, status int, limit string) {
	t.Helper()
	if r.Status != status || r.Code() != "RATE_LIMITED" || len(r.Errors) != 1 || r.Errors[0].Extensions["limit"] != limit {
		t.Fatalf("got HTTP %d %s, want HTTP %d RATE_LIMITED with extensions.limit %q", r.Status, r.Raw, status, limit)
	}
}

func TestClientRequestRateIsLimited(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	as := admissionServer(t, 5, 0, 0, &now, &mu)
	const q = `{ __typename }`
	post := func(addr, token string) apitest.Response {
		h := from(addr)
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		return as.PostHeaders(t, h, q, nil)
	}
	// A burst of twice the rate, then refusals, with Retry-After.
	for range 10 {
		apitest.MustOK(t, post("203.0.113.7", ""))
	}
	wantAdmissionRefusal(t, post("203.0.113.7", ""), http.StatusTooManyRequests, "client_rate")
	req, _ := http.NewRequest(http.MethodPost, as.URL+"/query", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("HTTP %d, Retry-After %q; want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// Another address is another client; so is a signed-in user behind the
	// same address (counted as the user, wherever they connect from).
	apitest.MustOK(t, post("203.0.113.8", ""))
	u := srv.Register(t, "admitrate")
	for range 10 {
		apitest.MustOK(t, post("203.0.113.7", u.AccessToken))
	}
	wantAdmissionRefusal(t, post("198.51.100.1", u.AccessToken), http.StatusTooManyRequests, "client_rate")

	// One second later the address has five requests again.
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	for range 5 {
		apitest.MustOK(t, post("203.0.113.7", ""))
	}
	wantAdmissionRefusal(t, post("203.0.113.7", ""), http.StatusTooManyRequests, "client_rate")
}

// TestConcurrentRequestsAreLimited holds requests in flight on a row lock and
// checks that one client's requests at once, and the process's, are capped:
// the request over a cap is refused at once, not queued, and once the held
// requests finish the slots are free again.
func TestConcurrentRequestsAreLimited(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	as := admissionServer(t, 0, 2, 3, &now, &mu)
	alice, bob, carol := srv.RegisterVerified(t, "admitalice"), srv.RegisterVerified(t, "admitbob"), srv.RegisterVerified(t, "admitcarol")
	orgA, orgB := srv.CreateOrg(t, alice, "Admit A "+uuid.NewString()[:8]), srv.CreateOrg(t, bob, "Admit B "+uuid.NewString()[:8])

	// A transaction holds both organizations' rows: updateOrganization waits on them.
	lock := holdLock(t, `SELECT 1 FROM organizations WHERE id IN ($1, $2) FOR UPDATE`, orgA, orgB)
	waiting := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			k := lock.waiters(t)
			if k == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d requests wait on the lock, want %d", k, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const rename = `mutation($o: ID!, $n: String!) { updateOrganization(orgId: $o, input: {name: $n}) { name } }`
	var wg sync.WaitGroup
	held := make([]apitest.Response, 3)
	hold := func(i int, s *apitest.Session, org uuid.UUID) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i] = as.Post(t, s.AccessToken, rename, map[string]any{"o": org, "n": fmt.Sprintf("Held %d %s", i, uuid.NewString()[:8])})
		}()
	}

	// Alice's two requests wait; her third is refused at once, Bob's is served.
	hold(0, alice, orgA)
	hold(1, alice, orgA)
	waiting(2)
	wantAdmissionRefusal(t, as.Post(t, alice.AccessToken, `{ me { id } }`, nil), http.StatusTooManyRequests, "client_concurrent")
	apitest.MustOK(t, as.Post(t, bob.AccessToken, `{ me { id } }`, nil))

	// With Bob's waiting too the process serves 3, its cap: Carol is refused.
	hold(2, bob, orgB)
	waiting(3)
	wantAdmissionRefusal(t, as.Post(t, carol.AccessToken, `{ me { id } }`, nil), http.StatusServiceUnavailable, "server_concurrent")

	// The held requests finish, and the slots are free again.
	lock.release(t)
	wg.Wait()
	for i, r := range held {
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Errorf("held request %d: HTTP %d %s", i, r.Status, r.Raw)
		}
	}
	for _, s := range []*apitest.Session{alice, alice, bob, carol} {
		apitest.MustOK(t, as.Post(t, s.AccessToken, `{ me { id } }`, nil))
	}
}
