package apitest

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// CreateOrg creates an organization owned by owner (who must be verified) and returns its id.
func (s *Server) CreateOrg(t testing.TB, owner *Session, name string) uuid.UUID {
	t.Helper()
	r := MustOK(t, s.Post(t, owner.AccessToken, `mutation($in: CreateOrganizationInput!) { createOrganization(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": name}}))
	var out struct{ CreateOrganization struct{ ID uuid.UUID } }
	r.Decode(t, &out)
	return out.CreateOrganization.ID
}

// Invite invites email to org as role (by inviter) and returns the invitation id and the emailed token.
func (s *Server) Invite(t testing.TB, inviter *Session, org uuid.UUID, email, role string) (uuid.UUID, string) {
	t.Helper()
	before := 0
	for _, m := range s.Mails(t, email) {
		if strings.Contains(m.Subject, "invited") {
			before++
		}
	}
	r := MustOK(t, s.Post(t, inviter.AccessToken, `mutation($o: ID!, $e: String!, $r: Role) { inviteMember(orgId: $o, email: $e, role: $r) { id } }`,
		map[string]any{"o": org, "e": email, "r": role}))
	var out struct{ InviteMember struct{ ID uuid.UUID } }
	r.Decode(t, &out)
	tok := LinkToken(t, s.WaitMailN(t, email, "invited", before+1), "accept-invitation")
	return out.InviteMember.ID, tok
}

// Accept accepts an invitation as user.
func (s *Server) Accept(t testing.TB, user *Session, token string) {
	t.Helper()
	MustOK(t, s.Post(t, user.AccessToken, `mutation($t: String!) { acceptInvitation(token: $t) { role } }`, map[string]any{"t": token}))
}

// AddMember registers a verified user and makes them a member of org with role
// (invited by inviter, who must be ADMIN or OWNER).
func (s *Server) AddMember(t testing.TB, inviter *Session, org uuid.UUID, role, prefix string) *Session {
	t.Helper()
	u := s.RegisterVerified(t, prefix)
	_, tok := s.Invite(t, inviter, org, u.Email, role)
	s.Accept(t, u, tok)
	return u
}

// TenancyDigest digests one organization's rows, to prove a failed call changed nothing.
func (s *Server) TenancyDigest(t testing.TB, org uuid.UUID) string {
	t.Helper()
	var d string
	err := s.DB.Get(&d, `SELECT concat_ws(' | ',
		(SELECT md5(string_agg(o::text, ',')) FROM organizations o WHERE id = $1),
		(SELECT count(*) || ':' || coalesce(md5(string_agg(m::text, ',' ORDER BY user_id)), '') FROM organization_members m WHERE organization_id = $1),
		(SELECT count(*) || ':' || coalesce(md5(string_agg(i::text, ',' ORDER BY id)), '') FROM invitations i WHERE organization_id = $1),
		(SELECT count(*) FROM audit_events WHERE organization_id = $1))`, org)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
