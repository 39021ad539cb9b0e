package app_test

import (
	"fmt"
	"testing"

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
	if counts[1] != counts[5] || counts[5] != counts[20] || counts[20] > 6 {
		t.Fatalf("statements for 1/5/20 organizations = %d/%d/%d, want equal and at most 6", counts[1], counts[5], counts[20])
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
// audit events and invitations come in one query, however many there are.
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
	if counts[1] != counts[25] {
		t.Fatalf("statements for 1 and 25 actors = %d and %d, want equal", counts[1], counts[25])
	}
}
