package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/metrics"
)

func TestOrganizationSlots(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		share        float64
		process, cap int // MAX_CONCURRENT_REQUESTS, the pool's connections
		want         int
	}{
		{0.25, 256, 20, 5}, // the defaults: a quarter of the pool
		{0.25, 8, 20, 2},   // a quarter of the process
		{0.25, 0, 20, 5},   // no process limit: the pool bounds
		{0.25, 0, 0, 0},    // nothing bounds: no cap
		{0.01, 256, 20, 1}, // at least one
		{0, 256, 20, 0},    // off
		{1, 256, 20, 20},
	} {
		cfg := config.Config{OrgConcurrentShare: c.share, MaxConcurrentRequests: c.process}
		if got := app.OrganizationSlots(cfg, c.cap); got != c.want {
			t.Errorf("share %v of min(%d, %d): %d slots, want %d", c.share, c.process, c.cap, got, c.want)
		}
	}
}

// TestOrganizationShareIsFair holds two operations of organization A on a
// row lock, with a share of two slots: three more of A wait (the waiting
// gauge says so), while B's request, a request of A's member that names no
// organization and a non-member's request naming A are served at once. The
// three are refused after the wait (HTTP 429, RATE_LIMITED, extensions.limit
// organization_concurrent, Retry-After: 1, no data); one more waits, and is
// served once the lock goes. The metrics count the refusals and the waits.
func TestOrganizationShareIsFair(t *testing.T) {
	t.Parallel()
	reg := metrics.New()
	const wait = 500 * time.Millisecond
	as, _ := ownServer(t, func(o *app.Options) {
		// A quarter of 8: two slots per organization (and eight waiting).
		o.Config.MaxConcurrentRequests, o.Config.OrgConcurrentShare, o.Config.OrgConcurrentWait = 8, 0.25, wait
		o.Metrics = reg
	})
	expose := metrics.Handler(reg)
	alice, bob, carol := srv.RegisterVerified(t, "fairalice"), srv.RegisterVerified(t, "fairbob"), srv.RegisterVerified(t, "faircarol")
	orgA, orgB := srv.CreateOrg(t, alice, "Fair A "+uuid.NewString()[:8]), srv.CreateOrg(t, bob, "Fair B "+uuid.NewString()[:8])

	lock := holdLock(t, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, orgA)
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waiting := func() float64 { return value(t, scrape(t, expose), "tenantgraph_organization_share_waiting") }

	// A's two slots: two renames wait on the lock.
	const rename = `mutation($o: ID!, $n: String!) { updateOrganization(orgId: $o, input: {name: $n}) { name } }`
	var held sync.WaitGroup
	heldOut := make([]apitest.Response, 2)
	for i := range heldOut {
		held.Go(func() {
			heldOut[i] = as.Post(t, alice.AccessToken, rename, map[string]any{"o": orgA, "n": fmt.Sprintf("Held %d %s", i, uuid.NewString()[:8])})
		})
	}
	poll("two renames wait on the lock", func() bool { return lock.waiters(t) == 2 })

	// Three more of A wait for a slot, not on the lock.
	const orgQuery = `query($o: ID!) { organization(orgId: $o) { id } }`
	type answer struct {
		r     apitest.Response
		retry string
		took  time.Duration
	}
	var queued sync.WaitGroup
	queuedOut := make([]answer, 3)
	for i := range queuedOut {
		queued.Go(func() {
			start := time.Now()
			r, h := postWithHeaders(t, as, alice.AccessToken, orgQuery, map[string]any{"o": orgA})
			queuedOut[i] = answer{r, h.Get("Retry-After"), time.Since(start)}
		})
	}
	poll("three of A wait for a slot", func() bool { return waiting() == 3 })
	if n := lock.waiters(t); n != 2 {
		t.Fatalf("%d requests wait on the lock, want the 2 renames", n)
	}

	// Meanwhile: B is served, and so are A's member naming no organization
	// and a stranger naming A (not counted: NOT_FOUND at once).
	start := time.Now()
	apitest.MustOK(t, as.Post(t, bob.AccessToken, orgQuery, map[string]any{"o": orgB}))
	apitest.MustOK(t, as.Post(t, alice.AccessToken, `{ me { id } }`, nil))
	if r := as.Post(t, carol.AccessToken, orgQuery, map[string]any{"o": orgA}); r.Code() != "NOT_FOUND" {
		t.Fatalf("a stranger naming A: %s, want NOT_FOUND", r.Raw)
	}
	if d := time.Since(start); d >= wait {
		t.Fatalf("the requests beside A's took %v: they waited", d)
	}

	// The three are refused after the wait, with nothing run.
	queued.Wait()
	for i, a := range queuedOut {
		r := a.r
		if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" || len(r.Errors) != 1 ||
			r.Errors[0].Extensions["limit"] != "organization_concurrent" || r.Errors[0].Extensions["max"] != float64(2) || a.retry != "1" {
			t.Fatalf("queued request %d: HTTP %d, Retry-After %q, %s; want 429, 1, RATE_LIMITED organization_concurrent with max 2", i, r.Status, a.retry, r.Raw)
		}
		if strings.Contains(r.Raw, `"data"`) {
			t.Errorf("queued request %d: a refusal has no data entry: %s", i, r.Raw)
		}
		if a.took < wait {
			t.Errorf("queued request %d refused after %v, before the wait of %v", i, a.took, wait)
		}
	}

	// One more waits, and gets the first slot given back when the lock goes.
	var last answer
	var lastDone sync.WaitGroup
	lastDone.Go(func() {
		r, h := postWithHeaders(t, as, alice.AccessToken, orgQuery, map[string]any{"o": orgA})
		last = answer{r: r, retry: h.Get("Retry-After")}
	})
	poll("one of A waits for a slot", func() bool { return waiting() == 1 })
	lock.release(t)
	held.Wait()
	lastDone.Wait()
	for i, r := range heldOut {
		apitest.MustOK(t, r)
		if r.Status != http.StatusOK {
			t.Errorf("held rename %d: HTTP %d", i, r.Status)
		}
	}
	apitest.MustOK(t, last.r)

	s := scrape(t, expose)
	if n := value(t, s, "tenantgraph_rate_limit_refusals_total", "limit=organization_concurrent"); n != 3 {
		t.Errorf("refusals of organization_concurrent: %v, want 3", n)
	}
	if n := value(t, s, "tenantgraph_organization_share_wait_seconds_count", "outcome=refused"); n != 3 {
		t.Errorf("refused waits: %v, want 3", n)
	}
	if n := value(t, s, "tenantgraph_organization_share_wait_seconds_count", "outcome=admitted"); n != 1 {
		t.Errorf("admitted waits: %v, want 1", n)
	}
	if n := value(t, s, "tenantgraph_organization_share_waiting"); n != 0 {
		t.Errorf("waiting at the end: %v, want 0", n)
	}
	if n := value(t, s, "tenantgraph_graphql_requests_total", "operation=(other)", "type=query", "code=RATE_LIMITED"); n != 3 {
		t.Errorf("requests counted RATE_LIMITED: %v, want 3", n)
	}
}

// postWithHeaders is Post, also returning the response's headers.
func postWithHeaders(t *testing.T, s *apitest.Server, token, query string, vars map[string]any) (apitest.Response, http.Header) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/query", strings.NewReader(string(body)))
	if err != nil {
		t.Error(err)
		return apitest.Response{}, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return apitest.Response{}, nil
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apitest.Response{Status: res.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Errorf("response is not JSON (%d): %s", res.StatusCode, raw)
	}
	return out, res.Header
}
