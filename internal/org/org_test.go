package org_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

func TestOrganizationHappyPath(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "owner")
	org := srv.CreateOrg(t, owner, "Acme Widgets")
	admin := srv.AddMember(t, owner, org, "ADMIN", "admin")
	member := srv.AddMember(t, admin, org, "MEMBER", "member")

	r := MustOK(t, srv.Post(t, member.AccessToken, `query($o: ID!) { organization(orgId: $o) {
		name slug viewerRole owner { email } memberCount
		members(first: 10) { totalCount edges { node { role user { email } } } } } }`, map[string]any{"o": org}))
	var out struct {
		Organization struct {
			Name, Slug, ViewerRole string
			Owner                  struct{ Email string }
			MemberCount            int
			Members                struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Role string
						User struct{ Email string }
					}
				}
			}
		}
	}
	r.Decode(t, &out)
	o := out.Organization
	if o.Slug != "acme-widgets" || o.ViewerRole != "MEMBER" || o.Owner.Email != owner.Email || o.MemberCount != 3 || o.Members.TotalCount != 3 || len(o.Members.Edges) != 3 {
		t.Fatalf("organization = %+v", o)
	}
	if o.Members.Edges[0].Node.Role != "OWNER" || o.Members.Edges[2].Node.User.Email != member.Email {
		t.Fatalf("members in join order = %+v", o.Members.Edges)
	}

	// Transfer to the admin: the old owner becomes ADMIN.
	r = MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!, $u: ID!) { transferOwnership(orgId: $o, newOwnerId: $u) { viewerRole owner { id } } }`,
		map[string]any{"o": org, "u": admin.UserID}))
	var tr struct {
		TransferOwnership struct {
			ViewerRole string
			Owner      struct{ ID uuid.UUID }
		}
	}
	r.Decode(t, &tr)
	if tr.TransferOwnership.ViewerRole != "ADMIN" || tr.TransferOwnership.Owner.ID != admin.UserID {
		t.Fatalf("after transfer: %+v", tr.TransferOwnership)
	}

	r = MustOK(t, srv.Post(t, admin.AccessToken, `query($o: ID!) { organization(orgId: $o) { auditLog(first: 10) { totalCount edges { node { action actor { id } targetId metadata ip userAgent } } } } }`,
		map[string]any{"o": org}))
	var al struct {
		Organization struct {
			AuditLog struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Action    string
						Actor     struct{ ID uuid.UUID }
						TargetID  string
						Metadata  json.RawMessage
						IP        string
						UserAgent string
					}
				}
			}
		}
	}
	r.Decode(t, &al)
	got := []string{}
	for _, e := range al.Organization.AuditLog.Edges {
		got = append(got, e.Node.Action)
	}
	want := []string{"ownership.transferred", "invitation.accepted", "member.invited", "invitation.accepted", "member.invited", "organization.created"}
	if len(got) != len(want) || al.Organization.AuditLog.TotalCount != len(want) {
		t.Fatalf("audit actions = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit actions = %v, want %v", got, want)
		}
	}
	top := al.Organization.AuditLog.Edges[0].Node
	if top.Actor.ID != owner.UserID || top.TargetID != admin.UserID.String() || top.IP != "127.0.0.1" || top.UserAgent == "" {
		t.Fatalf("transfer event = %+v", top)
	}
	t.Logf("metadata: %s", top.Metadata)
}
