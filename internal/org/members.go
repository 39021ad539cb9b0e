package org

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/tenant"
)

// Memberships returns the memberships among keys (for loaders).
func (s *Service) Memberships(ctx context.Context, keys []MemberKey) ([]*Member, error) {
	return s.store.Memberships(ctx, s.d.DB, keys)
}

// MemberCounts returns each key's member count (for loaders).
func (s *Service) MemberCounts(ctx context.Context, keys []MemberCountKey) (map[MemberCountKey]int, error) {
	return s.store.MemberCounts(ctx, s.d.DB, keys)
}

// Owners returns each organization's owner with the user (for loaders).
func (s *Service) Owners(ctx context.Context, orgs []uuid.UUID) ([]*Member, error) {
	return s.store.Owners(ctx, s.d.DB, orgs)
}

// MembersRequest is a members page of several organizations: all share First,
// After and Role.
type MembersRequest struct {
	Orgs  []uuid.UUID
	First int
	After *string
	Role  Role // "" for every role
	// Counted: each organization's member count comes in the same statement,
	// as its connection's totalCount (Role must be "", the count's filter).
	Counted bool
}

// MemberPages returns a page of members, ordered by join time, for each of the
// request's organizations with one query, and the members with their users (to
// prime loaders). A connection's totalCount goes through Deps.CountMembers when set.
func (s *Service) MemberPages(ctx context.Context, r MembersRequest) (map[uuid.UUID]*MemberConnection, []*Member, error) {
	req, err := page.Parse[time.Time](&r.First, r.After, "")
	if err != nil {
		return nil, nil, err
	}
	if r.Counted && r.Role != "" {
		return nil, nil, fmt.Errorf("members pages: counted with role %q", r.Role)
	}
	pages, totals, err := s.store.MembersPages(ctx, s.d.DB, r.Orgs, r.Role, req.After, req.Limit(), r.Counted)
	if err != nil {
		return nil, nil, fmt.Errorf("members pages: %w", err)
	}
	out := page.Each(req, r.Orgs, pages,
		func(m *Member) page.Key[time.Time] { return page.Key[time.Time]{V: m.JoinedAt, ID: m.UserID} },
		func(ctx context.Context, o uuid.UUID) (int, error) {
			if n, ok := totals[o]; ok {
				return n, nil
			}
			return page.Counts[MemberCountKey]{Loaded: s.d.CountMembers, Direct: s.MemberCounts}.Of(ctx, MemberCountKey{Org: o, Role: r.Role})
		})
	var all []*Member
	for _, c := range out {
		all = append(all, c.Nodes()...)
	}
	return out, all, nil
}

// ChangeRole sets a member's role. The actor must outrank the member's current
// role and may grant at most their own; nobody changes their own role; OWNER
// moves only by transfer.
func (s *Service) ChangeRole(ctx context.Context, actor auth.Viewer, orgID, userID uuid.UUID, role Role) (*Member, error) {
	if role == RoleOwner {
		return nil, apperr.Invalid("role", "ownership moves only by transferOwnership")
	}
	if userID == actor.UserID {
		return nil, apperr.New(apperr.Forbidden, "you cannot change your own role")
	}
	var out *Member
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(t *tenant.Tx) error {
		target, err := tenant.LockRow(ctx, t, s.store.MemberForUpdate, userID, errNotMember)
		if err != nil {
			return err
		}
		if t.Actor.Role.Rank() <= target.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you can only change the role of members below you")
		}
		if role.Rank() > t.Actor.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		if target.Role == role {
			out = target
			return nil
		}
		if out, err = s.store.SetRole(ctx, t, t.Org.ID, userID, role, t.Now); err != nil {
			return err
		}
		return t.Audit(ctx, "member.role_changed", "member", userID.String(),
			map[string]any{"before": map[string]any{"role": target.Role}, "after": map[string]any{"role": role}})
	})
	return out, err
}

// RemoveMember removes a member the actor outranks; the owner is never removed.
func (s *Service) RemoveMember(ctx context.Context, actor auth.Viewer, orgID, userID uuid.UUID) error {
	if userID == actor.UserID {
		return apperr.Invalid("userId", "use leaveOrganization to leave")
	}
	return s.inOrg(ctx, actor, orgID, RoleAdmin, func(t *tenant.Tx) error {
		target, err := tenant.LockRow(ctx, t, s.store.MemberForUpdate, userID, errNotMember)
		if err != nil {
			return err
		}
		if target.Role == RoleOwner {
			return apperr.New(apperr.Forbidden, "the owner cannot be removed")
		}
		if t.Actor.Role.Rank() <= target.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you can only remove members below you")
		}
		if err := s.store.DeleteMember(ctx, t, t.Org.ID, userID); err != nil {
			return err
		}
		return t.Audit(ctx, "member.removed", "member", userID.String(),
			map[string]any{"before": map[string]any{"role": target.Role}})
	})
}

// Leave removes the actor from the organization; the owner must transfer first.
func (s *Service) Leave(ctx context.Context, actor auth.Viewer, orgID uuid.UUID) error {
	return s.inOrg(ctx, actor, orgID, RoleMember, func(t *tenant.Tx) error {
		if t.Actor.Role == RoleOwner {
			return apperr.New(apperr.Conflict, "the owner cannot leave: transfer ownership first")
		}
		if err := s.store.DeleteMember(ctx, t, t.Org.ID, actor.UserID); err != nil {
			return err
		}
		return t.Audit(ctx, "member.left", "member", actor.UserID.String(),
			map[string]any{"before": map[string]any{"role": t.Actor.Role}})
	})
}

// TransferOwnership makes another verified member the owner; the old owner becomes ADMIN.
func (s *Service) TransferOwnership(ctx context.Context, actor auth.Viewer, orgID, newOwner uuid.UUID) (*Organization, error) {
	if newOwner == actor.UserID {
		return nil, apperr.Invalid("newOwnerId", "you already own this organization")
	}
	var out *Organization
	err := s.inOrg(ctx, actor, orgID, RoleOwner, func(t *tenant.Tx) error {
		target, err := tenant.LockRow(ctx, t, s.store.MemberForUpdate, newOwner,
			&apperr.Error{Code: apperr.NotFound, Message: "the new owner must already be a member", Field: "newOwnerId"})
		if err != nil {
			return err
		}
		u, err := s.user(ctx, t, newOwner)
		if err != nil {
			return err
		}
		if !u.EmailVerified() {
			return apperr.Invalid("newOwnerId", "the new owner must verify their email first")
		}
		// Demote first: the partial unique index allows one owner at a time, and
		// the deferred trigger checks at commit that there is one.
		if _, err := s.store.SetRole(ctx, t, t.Org.ID, actor.UserID, RoleAdmin, t.Now); err != nil {
			return err
		}
		if _, err := s.store.SetRole(ctx, t, t.Org.ID, newOwner, RoleOwner, t.Now); err != nil {
			return err
		}
		out = t.Org
		return t.Audit(ctx, "ownership.transferred", "member", newOwner.String(), map[string]any{
			"before": map[string]any{"owner": actor.UserID, "newOwnerRole": target.Role},
			"after":  map[string]any{"owner": newOwner, "previousOwnerRole": RoleAdmin}})
	})
	return out, err
}
