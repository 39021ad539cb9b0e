package org_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const (
	acceptMut  = `mutation($t: String!) { acceptInvitation(token: $t) { role user { id } } }`
	declineMut = `mutation($t: String!) { declineInvitation(token: $t) }`
	resendInv  = `mutation($o: ID!, $i: ID!) { resendInvitation(orgId: $o, invitationId: $i) { id status expiresAt } }`
	revokeInv  = `mutation($o: ID!, $i: ID!) { revokeInvitation(orgId: $o, invitationId: $i) { id status } }`
	inviteMut  = `mutation($o: ID!, $e: String!, $r: Role) { inviteMember(orgId: $o, email: $e, role: $r) { id email role status organizationName invitedBy { id } expiresAt } }`
)

// auditOf returns org's audit actions, oldest first.
func auditOf(t *testing.T, org uuid.UUID) []string {
	t.Helper()
	var actions []string
	if err := srv.DB.Select(&actions, `SELECT action FROM audit_events WHERE organization_id = $1 ORDER BY seq`, org); err != nil {
		t.Fatal(err)
	}
	return actions
}

func TestInvitationLifecycleRules(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "invowner")
	org := srv.CreateOrg(t, owner, "Invitation Rules")
	invitee := srv.RegisterVerified(t, "invitee")

	r := MustOK(t, srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": org, "e": "  " + strings.ToUpper(invitee.Email), "r": "ADMIN"}))
	var inv struct {
		InviteMember struct {
			ID                                    uuid.UUID
			Email, Role, Status, OrganizationName string
			InvitedBy                             struct{ ID uuid.UUID }
			ExpiresAt                             time.Time
		}
	}
	r.Decode(t, &inv)
	i := inv.InviteMember
	if i.Email != invitee.Email || i.Role != "ADMIN" || i.Status != "PENDING" || i.OrganizationName != "Invitation Rules" || i.InvitedBy.ID != owner.UserID {
		t.Fatalf("invitation = %+v", i)
	}
	if d := time.Until(i.ExpiresAt); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour+time.Minute {
		t.Fatalf("invitation expires in %v, want 7 days", d)
	}
	first := LinkToken(t, srv.WaitMail(t, invitee.Email, "invited"), "accept-invitation")

	// A second pending invitation for the same address conflicts.
	WantCode(t, srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": org, "e": invitee.Email}), "CONFLICT")

	// myInvitations shows it to the invitee.
	var mine struct {
		MyInvitations struct {
			TotalCount int
			Edges      []struct{ Node struct{ ID uuid.UUID } }
		}
	}
	MustOK(t, srv.Post(t, invitee.AccessToken, `{ myInvitations { totalCount edges { node { id } } } }`, nil)).Decode(t, &mine)
	if len(mine.MyInvitations.Edges) != 1 || mine.MyInvitations.Edges[0].Node.ID != i.ID || mine.MyInvitations.TotalCount != 1 {
		t.Fatalf("myInvitations = %+v", mine)
	}

	// Resend: a new token, the old one dead.
	MustOK(t, srv.Post(t, owner.AccessToken, resendInv, map[string]any{"o": org, "i": i.ID}))
	second := LinkToken(t, srv.WaitMailN(t, invitee.Email, "invited", 2), "accept-invitation")
	if second == first {
		t.Fatal("resend reused the token")
	}

	// Someone else, even verified, cannot accept it; nothing changes.
	stranger := srv.RegisterVerified(t, "stranger")
	before := srv.TenancyDigest(t, org)
	WantCode(t, srv.Post(t, stranger.AccessToken, acceptMut, map[string]any{"t": second}), "FORBIDDEN")
	WantCode(t, srv.Post(t, invitee.AccessToken, acceptMut, map[string]any{"t": first}), "BAD_USER_INPUT")
	WantCode(t, srv.Post(t, invitee.AccessToken, acceptMut, map[string]any{"t": "garbage"}), "BAD_USER_INPUT")
	if after := srv.TenancyDigest(t, org); after != before {
		t.Fatalf("a failed accept changed the organization:\n%s\n%s", before, after)
	}

	// The right person accepts, once.
	var acc struct {
		AcceptInvitation struct {
			Role string
			User struct{ ID uuid.UUID }
		}
	}
	MustOK(t, srv.Post(t, invitee.AccessToken, acceptMut, map[string]any{"t": second})).Decode(t, &acc)
	if acc.AcceptInvitation.Role != "ADMIN" || acc.AcceptInvitation.User.ID != invitee.UserID {
		t.Fatalf("accept = %+v", acc)
	}
	WantCode(t, srv.Post(t, invitee.AccessToken, acceptMut, map[string]any{"t": second}), "CONFLICT")

	// An existing member cannot be invited again.
	WantCode(t, srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": org, "e": invitee.Email}), "CONFLICT")

	// Revoked and declined invitations are dead.
	other := srv.RegisterVerified(t, "revoked")
	revID, revTok := srv.Invite(t, owner, org, other.Email, "MEMBER")
	var rv struct{ RevokeInvitation struct{ Status string } }
	MustOK(t, srv.Post(t, owner.AccessToken, revokeInv, map[string]any{"o": org, "i": revID})).Decode(t, &rv)
	if rv.RevokeInvitation.Status != "REVOKED" {
		t.Fatalf("revoke = %+v", rv)
	}
	r = srv.Post(t, other.AccessToken, acceptMut, map[string]any{"t": revTok})
	if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "revoked") {
		t.Fatalf("accepting a revoked invitation: %s", r.Raw)
	}
	WantCode(t, srv.Post(t, owner.AccessToken, revokeInv, map[string]any{"o": org, "i": revID}), "CONFLICT")

	decliner := srv.Register(t, "decliner") // declining needs no verified email
	_, decTok := srv.Invite(t, owner, org, decliner.Email, "MEMBER")
	MustOK(t, srv.Post(t, decliner.AccessToken, declineMut, map[string]any{"t": decTok}))
	WantCode(t, srv.Post(t, decliner.AccessToken, declineMut, map[string]any{"t": decTok}), "BAD_USER_INPUT")

	want := []string{"organization.created", "member.invited", "invitation.resent", "invitation.accepted",
		"member.invited", "invitation.revoked", "member.invited", "invitation.declined"}
	if got := auditOf(t, org); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit = %v\nwant    %v", got, want)
	}
}

func TestInvitationExpiry(t *testing.T) {
	// Not parallel: moves the clock.
	owner := srv.RegisterVerified(t, "expowner")
	org := srv.CreateOrg(t, owner, "Expiring Invitations")
	invitee := srv.RegisterVerified(t, "expiree")
	id, tok := srv.Invite(t, owner, org, invitee.Email, "MEMBER")
	func() {
		defer srv.Clock.Advance(7*24*time.Hour + time.Minute)()
		// A week later: fresh access tokens.
		invitee.AccessToken = srv.Login(t, invitee.Email, invitee.Password).Access
		owner.AccessToken = srv.Login(t, owner.Email, owner.Password).Access
		before := srv.TenancyDigest(t, org)
		r := srv.Post(t, invitee.AccessToken, acceptMut, map[string]any{"t": tok})
		if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "expired") {
			t.Fatalf("accepting an expired invitation: %s", r.Raw)
		}
		if after := srv.TenancyDigest(t, org); after != before {
			t.Fatal("a failed accept changed the organization")
		}
		// It lists as EXPIRED, is not in myInvitations, and a fresh invitation may replace it.
		var l struct {
			Organization struct {
				Invitations struct {
					Edges []struct {
						Node struct {
							ID     uuid.UUID
							Status string
						}
					}
				}
			}
		}
		MustOK(t, srv.Post(t, owner.AccessToken, `query($o: ID!) { organization(orgId: $o) { invitations(status: EXPIRED) { edges { node { id status } } } } }`,
			map[string]any{"o": org})).Decode(t, &l)
		if len(l.Organization.Invitations.Edges) != 1 || l.Organization.Invitations.Edges[0].Node.ID != id {
			t.Fatalf("expired invitations = %+v", l)
		}
		var mine struct {
			MyInvitations struct {
				TotalCount int
				Edges      []struct{ Node struct{ ID uuid.UUID } }
			}
		}
		MustOK(t, srv.Post(t, invitee.AccessToken, `{ myInvitations { totalCount edges { node { id } } } }`, nil)).Decode(t, &mine)
		if len(mine.MyInvitations.Edges) != 0 || mine.MyInvitations.TotalCount != 0 {
			t.Fatalf("myInvitations lists an expired invitation: %+v", mine)
		}
		MustOK(t, srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": org, "e": invitee.Email}))
	}()
}

func TestRoleRules(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "rrowner")
	org := srv.CreateOrg(t, owner, "Role Rules")
	admin := srv.AddMember(t, owner, org, "ADMIN", "rradmin")
	admin2 := srv.AddMember(t, owner, org, "ADMIN", "rradmin2")
	member := srv.AddMember(t, admin, org, "MEMBER", "rrmember")
	unverified := srv.Register(t, "rrunverified")
	_, tok := srv.Invite(t, owner, org, unverified.Email, "MEMBER")
	// Make the unverified user a member by SQL: they cannot accept through the API.
	if _, err := srv.DB.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'MEMBER')`, org, unverified.UserID); err != nil {
		t.Fatal(err)
	}
	_ = tok
	changeRole := `mutation($o: ID!, $u: ID!, $r: Role!) { changeMemberRole(orgId: $o, userId: $u, role: $r) { role } }`
	remove := `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`
	transfer := `mutation($o: ID!, $u: ID!) { transferOwnership(orgId: $o, newOwnerId: $u) { id } }`
	cases := []struct {
		name  string
		as    *Session
		query string
		vars  map[string]any
		code  string
	}{
		{"admin invites an owner", admin, inviteMut, map[string]any{"o": org, "e": UniqueEmail("x"), "r": "OWNER"}, "BAD_USER_INPUT"},
		{"member invites", member, inviteMut, map[string]any{"o": org, "e": UniqueEmail("x")}, "FORBIDDEN"},
		{"admin promotes a member to owner", admin, changeRole, map[string]any{"o": org, "u": member.UserID, "r": "OWNER"}, "BAD_USER_INPUT"},
		{"admin changes a peer admin", admin, changeRole, map[string]any{"o": org, "u": admin2.UserID, "r": "MEMBER"}, "FORBIDDEN"},
		{"admin changes the owner", admin, changeRole, map[string]any{"o": org, "u": owner.UserID, "r": "MEMBER"}, "FORBIDDEN"},
		{"admin changes own role", admin, changeRole, map[string]any{"o": org, "u": admin.UserID, "r": "MEMBER"}, "FORBIDDEN"},
		{"owner changes own role", owner, changeRole, map[string]any{"o": org, "u": owner.UserID, "r": "ADMIN"}, "FORBIDDEN"},
		{"admin removes a peer admin", admin, remove, map[string]any{"o": org, "u": admin2.UserID}, "FORBIDDEN"},
		{"admin removes the owner", admin, remove, map[string]any{"o": org, "u": owner.UserID}, "FORBIDDEN"},
		{"member removes a member", member, remove, map[string]any{"o": org, "u": unverified.UserID}, "FORBIDDEN"},
		{"owner leaves", owner, `mutation($o: ID!) { leaveOrganization(orgId: $o) }`, map[string]any{"o": org}, "CONFLICT"},
		{"transfer to self", owner, transfer, map[string]any{"o": org, "u": owner.UserID}, "BAD_USER_INPUT"},
		{"transfer to a non-member", owner, transfer, map[string]any{"o": org, "u": srv.RegisterVerified(t, "rrout").UserID}, "NOT_FOUND"},
		{"transfer to an unknown user", owner, transfer, map[string]any{"o": org, "u": uuid.New()}, "NOT_FOUND"},
		{"transfer to an unverified member", owner, transfer, map[string]any{"o": org, "u": unverified.UserID}, "BAD_USER_INPUT"},
		{"admin transfers", admin, transfer, map[string]any{"o": org, "u": member.UserID}, "FORBIDDEN"},
		{"first over the cap", owner, `query($o: ID!) { organization(orgId: $o) { members(first: 101) { totalCount } } }`, map[string]any{"o": org}, "BAD_USER_INPUT"},
		{"bad cursor", owner, `query($o: ID!) { organization(orgId: $o) { members(after: "zzz") { totalCount } } }`, map[string]any{"o": org}, "BAD_USER_INPUT"},
		{"bad slug", owner, `mutation($o: ID!) { updateOrganization(orgId: $o, input: {slug: "No Spaces"}) { id } }`, map[string]any{"o": org}, "BAD_USER_INPUT"},
		{"blank name", owner, `mutation($o: ID!) { updateOrganization(orgId: $o, input: {name: "  "}) { id } }`, map[string]any{"o": org}, "BAD_USER_INPUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := srv.TenancyDigest(t, org)
			WantCode(t, srv.Post(t, c.as.AccessToken, c.query, c.vars), c.code)
			if after := srv.TenancyDigest(t, org); after != before {
				t.Fatalf("a failed call changed the organization:\n%s\n%s", before, after)
			}
		})
	}

	// What is allowed, with its audit trail.
	MustOK(t, srv.Post(t, admin.AccessToken, changeRole, map[string]any{"o": org, "u": member.UserID, "r": "ADMIN"}))
	MustOK(t, srv.Post(t, owner.AccessToken, changeRole, map[string]any{"o": org, "u": member.UserID, "r": "MEMBER"}))
	MustOK(t, srv.Post(t, admin.AccessToken, remove, map[string]any{"o": org, "u": member.UserID}))
	MustOK(t, srv.Post(t, admin2.AccessToken, `mutation($o: ID!) { leaveOrganization(orgId: $o) }`, map[string]any{"o": org}))
	var ev []struct {
		Action   string          `db:"action"`
		Actor    uuid.UUID       `db:"actor_id"`
		Target   string          `db:"target_id"`
		Metadata json.RawMessage `db:"metadata"`
	}
	if err := srv.DB.Select(&ev, `SELECT action, actor_id, target_id, metadata FROM audit_events
		WHERE organization_id = $1 AND action IN ('member.role_changed', 'member.removed', 'member.left') ORDER BY seq`, org); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action string
		actor  uuid.UUID
		target uuid.UUID
		meta   string
	}{
		{"member.role_changed", admin.UserID, member.UserID, `{"after": {"role": "ADMIN"}, "before": {"role": "MEMBER"}}`},
		{"member.role_changed", owner.UserID, member.UserID, `{"after": {"role": "MEMBER"}, "before": {"role": "ADMIN"}}`},
		{"member.removed", admin.UserID, member.UserID, `{"before": {"role": "MEMBER"}}`},
		{"member.left", admin2.UserID, admin2.UserID, `{"before": {"role": "ADMIN"}}`},
	}
	if len(ev) != len(want) {
		t.Fatalf("events = %+v", ev)
	}
	for i, w := range want {
		if ev[i].Action != w.action || ev[i].Actor != w.actor || ev[i].Target != w.target.String() || string(ev[i].Metadata) != w.meta {
			t.Fatalf("event %d = %s %s %s %s, want %+v", i, ev[i].Action, ev[i].Actor, ev[i].Target, ev[i].Metadata, w)
		}
	}
}

func TestOrganizationsListAndSlugs(t *testing.T) {
	t.Parallel()
	u := srv.RegisterVerified(t, "lister")
	names := []string{"Zeta Corp", "alpha co", "Mid Org", "Beta Ltd", "Zeta Corp"}
	for _, n := range names {
		srv.CreateOrg(t, u, n)
	}
	// Same name twice: the second gets a suffixed slug.
	var slugs []string
	if err := srv.DB.Select(&slugs, `SELECT slug FROM organizations o JOIN organization_members m ON m.organization_id = o.id
		WHERE m.user_id = $1 AND o.name = 'Zeta Corp' ORDER BY o.created_at`, u.UserID); err != nil {
		t.Fatal(err)
	}
	if len(slugs) != 2 || !strings.HasPrefix(slugs[0], "zeta-corp") || slugs[1] == slugs[0] || !strings.HasPrefix(slugs[1], "zeta-corp-") {
		t.Fatalf("slugs = %v", slugs)
	}
	// An explicit slug that is taken is a conflict.
	r := srv.Post(t, u.AccessToken, `mutation { createOrganization(input: {name: "X", slug: "`+slugs[0]+`"}) { id } }`, nil)
	if r.Code() != "CONFLICT" || r.Field() != "slug" {
		t.Fatalf("taken slug: %s", r.Raw)
	}

	// Pages of 2, ordered by name then id.
	var got []string
	var after any
	for page := 0; ; page++ {
		var out struct {
			Organizations struct {
				TotalCount int
				PageInfo   struct {
					HasNextPage bool
					EndCursor   string
				}
				Edges []struct{ Node struct{ Name string } }
			}
		}
		MustOK(t, srv.Post(t, u.AccessToken, `query($a: String) { organizations(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }`,
			map[string]any{"a": after})).Decode(t, &out)
		if out.Organizations.TotalCount != len(names) {
			t.Fatalf("totalCount = %d", out.Organizations.TotalCount)
		}
		for _, e := range out.Organizations.Edges {
			got = append(got, e.Node.Name)
		}
		if !out.Organizations.PageInfo.HasNextPage {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		after = out.Organizations.PageInfo.EndCursor
	}
	want := []string{"alpha co", "Beta Ltd", "Mid Org", "Zeta Corp", "Zeta Corp"} // case-insensitive, then id
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("organizations = %v, want %v", got, want)
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "appendonly")
	org := srv.CreateOrg(t, owner, "Append Only")
	for _, stmt := range []string{
		`UPDATE audit_events SET action = 'x.y' WHERE organization_id = $1`,
		`DELETE FROM audit_events WHERE organization_id = $1`,
	} {
		if _, err := srv.DB.Exec(stmt, org); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: err = %v", stmt, err)
		}
	}
	if got := auditOf(t, org); len(got) != 1 {
		t.Fatalf("audit = %v", got)
	}
	// A mutation that fails writes no event.
	WantCode(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!) { leaveOrganization(orgId: $o) }`, map[string]any{"o": org}), "CONFLICT")
	if got := auditOf(t, org); len(got) != 1 {
		t.Fatalf("audit after a failed mutation = %v", got)
	}
	// Filters: by action and by actor.
	var out struct {
		Organization struct {
			AuditLog struct{ TotalCount int }
		}
	}
	MustOK(t, srv.Post(t, owner.AccessToken, `query($o: ID!, $a: ID) { organization(orgId: $o) { auditLog(action: "organization.created", actorId: $a) { totalCount } } }`,
		map[string]any{"o": org, "a": owner.UserID})).Decode(t, &out)
	if out.Organization.AuditLog.TotalCount != 1 {
		t.Fatalf("filtered audit = %+v", out)
	}
	MustOK(t, srv.Post(t, owner.AccessToken, `query($o: ID!, $a: ID) { organization(orgId: $o) { auditLog(actorId: $a) { totalCount } } }`,
		map[string]any{"o": org, "a": uuid.New()})).Decode(t, &out)
	if out.Organization.AuditLog.TotalCount != 0 {
		t.Fatalf("audit by another actor = %+v", out)
	}
}
