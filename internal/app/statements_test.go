package app_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const dashboardQuery = `{ organizations(first: 20) { edges { node {
	viewerRole owner { email } memberCount
	members(first: 50) { edges { node { role user { email } } } } } } } }`

// seedOrgs gives viewer n organizations (created through the API) of 10 members each
// (the other 9 inserted directly: fixtures, not the thing measured).
func seedOrgs(t *testing.T, viewer *Session, n int) {
	t.Helper()
	seedOrgsB(t, viewer.AccessToken, viewer.UserID.String(), n)
}

func seedOrgsB(t testing.TB, token, tag string, n int) {
	t.Helper()
	for i := range n {
		org := srv.CreateOrg(t, &Session{AccessToken: token}, fmt.Sprintf("Stmt %s %02d", tag[:8], i))
		_, err := srv.DB.Exec(`
			WITH u AS (
				INSERT INTO users (email, name, password_hash)
				SELECT 'seed-' || gen_random_uuid() || '@example.test', 'Seed', '$argon2id$seed' FROM generate_series(1, 9)
				RETURNING id)
			INSERT INTO organization_members (organization_id, user_id, role)
			SELECT $1, id, CASE WHEN row_number() OVER () <= 2 THEN 'ADMIN' ELSE 'MEMBER' END FROM u`, org)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDashboardQueryCostsConstantStatements: the organizations list with
// role, owner, count and first members page costs the same number of SQL
// statements for 1, 5 and 20 organizations: no query per row.
func TestDashboardQueryCostsConstantStatements(t *testing.T) {
	t.Parallel()
	counts := map[int]int64{}
	for _, n := range []int{1, 5, 20} {
		viewer := srv.RegisterVerified(t, fmt.Sprintf("stmt%d", n))
		seedOrgs(t, viewer, n)
		r, stmts := srv.PostCounted(t, viewer.AccessToken, dashboardQuery, nil)
		MustOK(t, r)
		var out struct {
			Organizations struct {
				Edges []struct {
					Node struct {
						ViewerRole  string
						Owner       struct{ Email string }
						MemberCount int
						Members     struct {
							Edges []struct {
								Node struct {
									Role string
									User struct{ Email string }
								}
							}
						}
					}
				}
			}
		}
		r.Decode(t, &out)
		if len(out.Organizations.Edges) != n {
			t.Fatalf("%d organizations listed, want %d", len(out.Organizations.Edges), n)
		}
		for _, e := range out.Organizations.Edges {
			nd := e.Node
			if nd.ViewerRole != "OWNER" || nd.Owner.Email != viewer.Email || nd.MemberCount != 10 || len(nd.Members.Edges) != 10 || nd.Members.Edges[9].Node.User.Email == "" {
				t.Fatalf("organization node = %+v", nd)
			}
		}
		counts[n] = stmts
		t.Logf("%2d organizations x 10 members: %d SQL statements", n, stmts)
	}
	// The organizations with the viewer's role; their owners; their members
	// pages with memberCount in the same statement.
	if counts[1] != 3 || counts[5] != 3 || counts[20] != 3 {
		t.Fatalf("statements for 1/5/20 organizations = %d/%d/%d, want 3", counts[1], counts[5], counts[20])
	}
}

// TestLoadDashboardCostsTwoStatements: the load test's dashboard (no owner)
// is the organizations and one statement for their members pages and member
// counts, whose counts are each organization's, not its page's.
func TestLoadDashboardCostsTwoStatements(t *testing.T) {
	t.Parallel()
	viewer := srv.RegisterVerified(t, "stmt-load")
	seedOrgs(t, viewer, 3) // 10 members each
	srv.CreateOrg(t, viewer, "Stmt load small")
	r, stmts := srv.PostCounted(t, viewer.AccessToken,
		`query { organizations(first: 5) { edges { node { name memberCount members(first: 4) { totalCount edges { node { role } } } } } } }`, nil)
	MustOK(t, r)
	var out struct {
		Organizations struct {
			Edges []struct {
				Node struct {
					Name        string
					MemberCount int
					Members     struct {
						TotalCount int
						Edges      []struct{ Node struct{ Role string } }
					}
				}
			}
		}
	}
	r.Decode(t, &out)
	if len(out.Organizations.Edges) != 4 {
		t.Fatalf("%d organizations, want 4", len(out.Organizations.Edges))
	}
	for _, e := range out.Organizations.Edges {
		want, page := 10, 4
		if e.Node.Name == "Stmt load small" {
			want, page = 1, 1
		}
		if e.Node.MemberCount != want || e.Node.Members.TotalCount != want || len(e.Node.Members.Edges) != page {
			t.Errorf("%s: memberCount %d, totalCount %d, %d listed; want %d, %d, %d", e.Node.Name,
				e.Node.MemberCount, e.Node.Members.TotalCount, len(e.Node.Members.Edges), want, want, page)
		}
	}
	if stmts != 2 {
		t.Errorf("%d statements, want 2", stmts)
	}
}

// TestHasRoleOnListItemsIsBatched: @hasRole on a field of every organization in a
// list costs one membership query, not one per organization.
func TestHasRoleOnListItemsIsBatched(t *testing.T) {
	t.Parallel()
	viewer := srv.RegisterVerified(t, "batched")
	seedOrgs(t, viewer, 12)
	q := `{ organizations(first: 50) { edges { node { invitations(first: 1) { pageInfo { hasNextPage } } } } } }`
	r, stmts := srv.PostCounted(t, viewer.AccessToken, q, nil)
	MustOK(t, r)
	// 1 list (memberships primed from it) + 1 invitations page per organization is
	// the resolver's own cost; the directive must add nothing per item.
	if stmts > 1+12 {
		t.Fatalf("%d statements for 12 organizations", stmts)
	}
	t.Logf("invitations on 12 organizations: %d statements", stmts)
}

// TestAuditLogAndInvitationListsCostConstantStatements: the users behind a page of
// audit events and invitations come in one query, however many there are: the
// request costs at most auditAndInvitationStatements statements for 1 actor
// and for 25. (At most, not exactly: the two lists prefetch their users
// concurrently, and a prefetch skips the users the other has already loaded,
// so one query fewer when the same users are behind both and one finishes first.)
func TestAuditLogAndInvitationListsCostConstantStatements(t *testing.T) {
	t.Parallel()
	q := `query($o: ID!) { organization(orgId: $o) {
		auditLog(first: 50) { edges { node { action actor { email } } } }
		invitations(first: 50) { edges { node { email organizationName invitedBy { email } } } } } }`
	counts := map[int]int64{}
	for _, n := range []int{1, 25} {
		owner := srv.RegisterVerified(t, fmt.Sprintf("auditstmt%d", n))
		org := srv.CreateOrg(t, owner, fmt.Sprintf("Audit Statements %d", n))
		// n distinct actors and inviters (fixtures written directly; the reads are measured).
		_, err := srv.DB.Exec(`
			WITH u AS (
				INSERT INTO users (email, name, password_hash)
				SELECT 'actor-' || gen_random_uuid() || '@example.test', 'Actor', '$argon2id$seed' FROM generate_series(1, $2::int)
				RETURNING id),
			a AS (
				INSERT INTO audit_events (organization_id, actor_id, action) SELECT $1, id, 'member.left' FROM u)
			INSERT INTO invitations (organization_id, email, role, token_hash, invited_by, expires_at)
			SELECT $1, 'inv-' || gen_random_uuid() || '@example.test', 'MEMBER', sha256(gen_random_uuid()::text::bytea), id, now() + interval '1 day' FROM u`,
			org, n)
		if err != nil {
			t.Fatal(err)
		}
		r, stmts := srv.PostCounted(t, owner.AccessToken, q, map[string]any{"o": org})
		MustOK(t, r)
		var out struct {
			Organization struct {
				AuditLog struct {
					Edges []struct {
						Node struct{ Actor struct{ Email string } }
					}
				}
				Invitations struct {
					Edges []struct {
						Node struct {
							OrganizationName string
							InvitedBy        struct{ Email string }
						}
					}
				}
			}
		}
		r.Decode(t, &out)
		if len(out.Organization.AuditLog.Edges) != n+1 || len(out.Organization.Invitations.Edges) != n {
			t.Fatalf("%d events, %d invitations", len(out.Organization.AuditLog.Edges), len(out.Organization.Invitations.Edges))
		}
		for _, e := range out.Organization.Invitations.Edges {
			if e.Node.InvitedBy.Email == "" || e.Node.OrganizationName == "" {
				t.Fatalf("invitation = %+v", e.Node)
			}
		}
		counts[n] = stmts
		t.Logf("%2d actors and inviters: %d SQL statements", n, stmts)
	}
	for n, c := range counts {
		if c > auditAndInvitationStatements {
			t.Errorf("%d actors and inviters: %d SQL statements, want at most %d", n, c, auditAndInvitationStatements)
		}
	}
}

// auditAndInvitationStatements: membership (@hasRole), organization, audit page,
// invitations page, actors, inviters.
const auditAndInvitationStatements = 6

// listCase is one connection, queried with and without totalCount.
type listCase struct {
	name  string
	query func(totalCount string) string // a query whose one connection selects totalCount (or nothing)
	vars  func(f *listFixture) map[string]any
	path  []string // from data to the connection
}

// listFixture is a viewer with n organizations it owns; the first has n more
// members, n invitations and n audit events by n distinct users, and each other
// organization has an invitation addressed to the viewer's email.
type listFixture struct {
	viewer *Session
	org    uuid.UUID
	after  string // cursor after the first member of org
}

func seedLists(t *testing.T, n int) *listFixture {
	t.Helper()
	f := &listFixture{viewer: srv.RegisterVerified(t, fmt.Sprintf("lists%d", n))}
	f.org = srv.CreateOrg(t, f.viewer, fmt.Sprintf("Lists %d %s", n, uuid.NewString()[:6]))
	_, err := srv.DB.Exec(`
		WITH o AS (
			INSERT INTO organizations (name, slug) SELECT 'Lists extra ' || g, 'lists-extra-' || gen_random_uuid()
			FROM generate_series(2, $3::int) g RETURNING id),
		om AS (
			INSERT INTO organization_members (organization_id, user_id, role) SELECT id, $2, 'OWNER' FROM o),
		mine AS (
			INSERT INTO invitations (organization_id, email, role, token_hash, invited_by, expires_at)
			SELECT id, $4, 'MEMBER', sha256(gen_random_uuid()::text::bytea), $2, now() + interval '1 day' FROM o),
		u AS (
			INSERT INTO users (email, name, password_hash)
			SELECT 'lists-' || gen_random_uuid() || '@example.test', 'Lists', '$argon2id$seed' FROM generate_series(1, $3::int)
			RETURNING id),
		m AS (
			INSERT INTO organization_members (organization_id, user_id, role) SELECT $1, id, 'MEMBER' FROM u),
		a AS (
			INSERT INTO audit_events (organization_id, actor_id, action) SELECT $1, id, 'member.left' FROM u)
		INSERT INTO invitations (organization_id, email, role, token_hash, invited_by, expires_at)
		SELECT $1, 'inv-' || gen_random_uuid() || '@example.test', 'MEMBER', sha256(gen_random_uuid()::text::bytea), id, now() + interval '1 day' FROM u`,
		f.org, f.viewer.UserID, n, f.viewer.Email)
	if err != nil {
		t.Fatal(err)
	}
	var first struct {
		Organization struct {
			Members struct{ PageInfo struct{ EndCursor string } }
		}
	}
	MustOK(t, srv.Post(t, f.viewer.AccessToken, `query($o: ID!) { organization(orgId: $o) { members(first: 1) { pageInfo { endCursor } } } }`,
		map[string]any{"o": f.org})).Decode(t, &first)
	f.after = first.Organization.Members.PageInfo.EndCursor
	return f
}

var listCases = []listCase{
	{name: "organizations", path: []string{"organizations"},
		query: func(tc string) string {
			return `{ organizations(first: 50) { ` + tc + ` edges { node { id name } } } }`
		}},
	{name: "members", path: []string{"organization", "members"},
		query: func(tc string) string {
			return `query($o: ID!) { organization(orgId: $o) { members(first: 50) { ` + tc + ` edges { node { role user { email } } } } } }`
		}},
	{name: "members of every organization", path: []string{"organizations"},
		query: func(tc string) string {
			return `{ organizations(first: 50) { edges { node { members(first: 5) { ` + tc + ` edges { node { role } } } } } } }`
		}},
	{name: "members after a cursor", path: []string{"organization", "members"},
		query: func(tc string) string {
			return `query($o: ID!, $c: String) { organization(orgId: $o) { members(first: 50, after: $c) { ` + tc + ` edges { node { role user { email } } } } } }`
		}},
	{name: "invitations", path: []string{"organization", "invitations"},
		query: func(tc string) string {
			return `query($o: ID!) { organization(orgId: $o) { invitations(first: 50) { ` + tc + ` edges { node { email invitedBy { email } } } } } }`
		}},
	{name: "audit log", path: []string{"organization", "auditLog"},
		query: func(tc string) string {
			return `query($o: ID!) { organization(orgId: $o) { auditLog(first: 50) { ` + tc + ` edges { node { action actor { email } } } } } }`
		}},
	{name: "myInvitations", path: []string{"myInvitations"},
		query: func(tc string) string {
			return `{ myInvitations(first: 50) { ` + tc + ` edges { node { organizationName invitedBy { email } } } } }`
		}},
}

// TestListsCostFixedStatements: every connection costs the same number of SQL
// statements for 3 and 30 items, and selecting totalCount adds exactly one (its
// own COUNT), whatever the list's length.
func TestListsCostFixedStatements(t *testing.T) {
	t.Parallel()
	fixtures := map[int]*listFixture{3: seedLists(t, 3), 30: seedLists(t, 30)}
	for _, c := range listCases {
		t.Run(c.name, func(t *testing.T) {
			counts := map[string]int64{}
			for _, n := range []int{3, 30} {
				f := fixtures[n]
				for _, tc := range []string{"", "totalCount"} {
					r, stmts := srv.PostCounted(t, f.viewer.AccessToken, c.query(tc), map[string]any{"o": f.org, "c": f.after})
					MustOK(t, r)
					var data map[string]any
					r.Decode(t, &data)
					conn := data
					for _, p := range c.path {
						conn = conn[p].(map[string]any)
					}
					if edges := len(conn["edges"].([]any)); edges < n-1 || edges > n+1 {
						t.Fatalf("%d edges for %d items", edges, n)
					}
					if total, ok := conn["totalCount"].(float64); tc != "" && ok && total < float64(n-1) {
						t.Fatalf("totalCount = %v for %d items", conn["totalCount"], n)
					}
					counts[fmt.Sprintf("%d %s", n, tc)] = stmts
				}
			}
			t.Logf("statements: %d/%d items without totalCount, %d/%d with", counts["3 "], counts["30 "], counts["3 totalCount"], counts["30 totalCount"])
			if counts["3 "] != counts["30 "] || counts["3 totalCount"] != counts["30 totalCount"] || counts["3 totalCount"] != counts["3 "]+1 {
				t.Fatalf("statements = %v, want the same for 3 and 30 items and one more with totalCount", counts)
			}
		})
	}
}
