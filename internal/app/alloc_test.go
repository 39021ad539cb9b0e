package app_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
)

// loadDashboardQuery is the load test's dashboard scenario (scripts/loadtest,
// issue 8's data set): 5 organizations of 11 members, the first 10 of each.
const loadDashboardQuery = `query { organizations(first:5) { edges { node { id name viewerRole memberCount members(first:10) { edges { node { role user { id email name } } } } } } } }`

// Allocations per request of the dashboard queries: heap objects allocated by
// the whole process per request, measured by allocsPerRequest (about 40 of them
// are the test client's). The goal is issue 17's; the budget is what the code
// does today (2026-12-06), which TestDashboardAllocations holds it to, within
// allocSlack. The goal is not met (docs/testing.md, "Load test goals": what is
// left is lib/pq's decoding, about 10 a member row, and gqlgen's field
// contexts and field sets, about 30 a member).
const (
	// loadDashboardQuery: 5 organizations of 11 members, 50 members listed.
	AllocGoalLoadDashboard   = 2_500
	AllocBudgetLoadDashboard = 3_700
	// dashboardQuery: 20 organizations of 10 members with owners, 200 members listed.
	AllocBudgetDashboard = 12_600
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
	return allocsPerRequestVars(t, token, query, nil, n)
}

// allocsPerRequestVars is allocsPerRequest with variables.
func allocsPerRequestVars(t testing.TB, token, query string, vars map[string]any, n int) float64 {
	t.Helper()
	c := srv.NewLeanClient(t, token, query, vars)
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

// customersPageQuery is a CRM page of 50: each customer with its assignee,
// its creator and its first 3 notes with their authors.
const customersPageQuery = `query($o: ID!) { customers(orgId: $o, first: 50) { totalCount edges { node {
	id name email status assignee { id name } createdBy { id name }
	notes(first: 3) { edges { node { body author { id name } } } } } } } }`

// AllocBudgetCustomersPage is customersPageQuery's budget: 50 customers of an
// organization of 60, 4 notes each.
const AllocBudgetCustomersPage = 19_100 // 21,094 before issue 17

// seedCustomersPage gives a new organization 60 customers, each assigned to
// and created by one of its 4 members, with 4 notes each; it returns a
// member's token and the organization.
func seedCustomersPage(t testing.TB, tag string) (string, uuid.UUID) {
	t.Helper()
	owner := srv.RegisterVerified(t, tag)
	org := srv.CreateOrg(t, owner, "Customers page "+owner.UserID.String()[:8])
	users := []uuid.UUID{owner.UserID}
	for i := range 3 {
		users = append(users, srv.AddMember(t, owner, org, "MEMBER", fmt.Sprintf("%s-%d", tag, i)).UserID)
	}
	if _, err := srv.DB.Exec(`
		WITH c AS (
			INSERT INTO customers (organization_id, name, email, assignee_id, created_by, created_at, updated_at)
			SELECT $1, 'Customer ' || lpad(i::text, 3, '0'), 'c' || i || '@example.test', ($2::uuid[])[1 + i % 4], ($2::uuid[])[1 + (i + 1) % 4], now(), now()
			FROM generate_series(1, 60) AS i RETURNING id)
		INSERT INTO customer_notes (organization_id, customer_id, author_id, body, created_at, updated_at)
		SELECT $1, c.id, ($2::uuid[])[1 + j % 4], 'note ' || j, now() + j * interval '1 second', now()
		FROM c CROSS JOIN generate_series(1, 4) AS j`, org, pq.Array(users)); err != nil {
		t.Fatal(err)
	}
	return owner.AccessToken, org
}

// TestCustomersPageCosts: a customers page of 50 with assignee, creator and
// first notes with their authors costs 5 SQL statements (membership, page,
// count, users, notes) and stays within its allocation budget (plus
// allocSlack). Not parallel: allocsPerRequest counts the whole process.
func TestCustomersPageCosts(t *testing.T) {
	token, org := seedCustomersPage(t, "custpage")
	vars := map[string]any{"o": org}
	r, stmts := srv.PostCounted(t, token, customersPageQuery, vars)
	MustOK(t, r)
	var out struct {
		Customers struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					Assignee, CreatedBy struct{ Name string }
					Notes               struct {
						Edges []struct {
							Node struct{ Author struct{ Name string } }
						}
					}
				}
			}
		}
	}
	r.Decode(t, &out)
	if out.Customers.TotalCount != 60 || len(out.Customers.Edges) != 50 {
		t.Fatalf("totalCount %d, %d listed; want 60, 50", out.Customers.TotalCount, len(out.Customers.Edges))
	}
	for _, e := range out.Customers.Edges {
		if e.Node.Assignee.Name == "" || e.Node.CreatedBy.Name == "" || len(e.Node.Notes.Edges) != 3 || e.Node.Notes.Edges[2].Node.Author.Name == "" {
			t.Fatalf("customer node = %+v", e.Node)
		}
	}
	if stmts != 5 {
		t.Errorf("%d statements, want 5", stmts)
	}
	got := allocsPerRequestVars(t, token, customersPageQuery, vars, 30)
	t.Logf("customers page of 50: %.0f allocations per request (budget %d), %d statements", got, AllocBudgetCustomersPage, stmts)
	if got > AllocBudgetCustomersPage*(1+allocSlack) {
		t.Errorf("customers page: %.0f allocations per request, over the budget of %d by more than %.0f%%",
			got, AllocBudgetCustomersPage, allocSlack*100)
	}
}

// BenchmarkCustomersPage measures customersPageQuery end to end.
func BenchmarkCustomersPage(b *testing.B) {
	token, org := seedCustomersPage(b, "benchcust")
	srv.BenchQuery(b, token, customersPageQuery, map[string]any{"o": org}, 5)
}
