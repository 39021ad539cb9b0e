package app_test

import (
	"fmt"
	"testing"

	. "tenantgraph/internal/apitest"
)

// loadDashboardQuery is the load test's dashboard scenario (scripts/loadtest,
// issue 8's data set): 5 organizations of 11 members, the first 10 of each.
const loadDashboardQuery = `query { organizations(first:5) { edges { node { id name viewerRole memberCount members(first:10) { edges { node { role user { id email name } } } } } } } }`

// Allocations per request of the dashboard queries: heap objects allocated by
// the whole process per request, measured by allocsPerRequest (about 40 of them
// are the test client's). The goal is issue 8's; the budget is what the code
// does today (2026-11-27), which TestDashboardAllocations holds it to, within
// allocSlack. The goal is not met (docs/testing.md, "Load test": the rest is gqlgen's
// execution, about 90 allocations per member row).
const (
	// loadDashboardQuery: 5 organizations of 11 members, 50 members listed.
	AllocGoalLoadDashboard   = 4_000
	AllocBudgetLoadDashboard = 9_300
	// dashboardQuery: 20 organizations of 10 members with owners, 200 members listed.
	AllocBudgetDashboard = 31_000
	// allocSlack: the test fails beyond the budget plus this share of it.
	allocSlack = 0.25
)

// seedDashboardViewer gives a new verified viewer orgs organizations of 1+others
// members (the viewer, then 2 admins and the rest members).
func seedDashboardViewer(t testing.TB, prefix string, orgs, others int) *Session {
	t.Helper()
	viewer := srv.RegisterVerified(t, prefix)
	for i := range orgs {
		org := srv.CreateOrg(t, viewer, fmt.Sprintf("Dash %s %02d", viewer.UserID.String()[:8], i))
		if _, err := srv.DB.Exec(`
			WITH u AS (
				INSERT INTO users (email, name, password_hash)
				SELECT 'seed-' || gen_random_uuid() || '@example.test', 'Seed ' || g, '$argon2id$seed' FROM generate_series(1, $2) g
				RETURNING id)
			INSERT INTO organization_members (organization_id, user_id, role)
			SELECT $1, id, CASE WHEN row_number() OVER () <= 2 THEN 'ADMIN' ELSE 'MEMBER' END FROM u`, org, others); err != nil {
			t.Fatal(err)
		}
	}
	return viewer
}

// allocsPerRequest sends query n times, one after the other, and returns the
// heap objects the whole test process allocated per request. Other tests must
// not run meanwhile: its callers are not parallel.
func allocsPerRequest(t testing.TB, token, query string, n int) float64 {
	t.Helper()
	c := srv.NewLeanClient(t, token, query, nil)
	for range 20 { // warm: the query cache, the pool's connections, the statements
		c.Send()
	}
	before := HeapAllocs()
	for range n {
		c.Send()
	}
	return float64(HeapAllocs()-before) / float64(n)
}

// TestDashboardAllocations: the dashboard queries stay within their allocation
// budgets (plus allocSlack). Allocations are deterministic enough to test where
// time is not: a change that adds work per field or per row shows here.
// Not parallel: allocsPerRequest counts the whole process.
func TestDashboardAllocations(t *testing.T) {
	for _, c := range []struct {
		name         string
		orgs, others int
		query        string
		budget       float64
	}{
		{"load test dashboard, 5 organizations of 11", 5, 10, loadDashboardQuery, AllocBudgetLoadDashboard},
		{"dashboard, 20 organizations of 10", 20, 9, dashboardQuery, AllocBudgetDashboard},
	} {
		viewer := seedDashboardViewer(t, "allocs", c.orgs, c.others)
		got := allocsPerRequest(t, viewer.AccessToken, c.query, 50)
		t.Logf("%s: %.0f allocations per request (budget %.0f)", c.name, got, c.budget)
		if got > c.budget*(1+allocSlack) {
			t.Errorf("%s: %.0f allocations per request, over the budget of %.0f by more than %.0f%%",
				c.name, got, c.budget, allocSlack*100)
		}
	}
}

// BenchmarkLoadDashboardQuery measures the load test's dashboard query
// (loadDashboardQuery: 5 organizations of 11, 50 members) end to end through
// HTTP and PostgreSQL: 2 SQL statements (the organizations; their members
// pages with their counts).
func BenchmarkLoadDashboardQuery(b *testing.B) {
	srv.BenchQuery(b, seedDashboardViewer(b, "benchload", 5, 10).AccessToken, loadDashboardQuery, nil, 2)
}
