package org

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/account"
	"tenantgraph/internal/apperr"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/mail"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
)

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// UserLookup finds users by id through q (the account area's store): inside a
// transaction it must use that transaction, never a second pool connection, or
// lock waiters holding the pool's other connections could starve it.
type UserLookup func(ctx context.Context, q sqlx.QueryerContext, ids []uuid.UUID) ([]*account.User, error)

// Auditor records an audit event in the caller's transaction and counts recent
// ones (the audit area).
type Auditor interface {
	Record(ctx context.Context, tx sqlx.ExecerContext, e audit.Entry) error
	CountSince(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, actions []string, since time.Time, key, value string) (all, matching int, err error)
	CountByActorSince(ctx context.Context, tx sqlx.ExtContext, actor uuid.UUID, actions []string, since time.Time) (int, error)
}

// MailLimits cap the invitation mails (inviteMember and resendInvitation each
// send one) over a sliding Window, so that the service cannot be used to bomb
// an address or to spam strangers: per organization, and per inviter across
// every organization they administer (else creating organizations would
// multiply the organization's limit). They are counted from the audit log (the
// member.invited and invitation.resent events, which carry the address) inside
// the mutation's transaction, under the organization's lock and then the
// inviter's: they hold across server replicas and concurrent requests. A mail
// over a limit is refused with RATE_LIMITED, and nothing is written or sent.
type MailLimits struct {
	PerRecipient    int           // mails from one organization to one address; default 3
	PerOrganization int           // mails from one organization to any address; default 50
	PerInviter      int           // mails one user asks for, from all their organizations; default 100
	Window          time.Duration // default 1 hour
}

// DefaultMailLimits are the limits of a server (README, "Tenancy operations").
func DefaultMailLimits() MailLimits {
	return MailLimits{PerRecipient: 3, PerOrganization: 50, PerInviter: 100, Window: time.Hour}
}

// CreateLimit caps the organizations one user creates over a sliding Window,
// counted from the audit log (organization.created) under a lock on the user:
// an organization costs rows and gives its creator a fresh mail budget, so it
// is not free. Over it, createOrganization is RATE_LIMITED and creates nothing.
type CreateLimit struct {
	PerUser int           // default 20
	Window  time.Duration // default 24 hours
}

// DefaultCreateLimit is the limit of a server (README, "Tenancy operations").
func DefaultCreateLimit() CreateLimit { return CreateLimit{PerUser: 20, Window: 24 * time.Hour} }

// invitationMailActions are the audit actions that each record one invitation
// mail; migrations/00005 (per organization) and 00012 (per actor, with
// organizationCreated) index exactly these.
var invitationMailActions = []string{"member.invited", "invitation.resent"}

const organizationCreated = "organization.created"

// Deps are what the service needs.
type Deps struct {
	DB    *sqlx.DB
	Gate  *Gate
	Audit Auditor
	Users UserLookup
	// CountMembers, when set, counts members for a connection's totalCount (the
	// request's loader); otherwise each count is its own query.
	CountMembers func(ctx context.Context, k MemberCountKey) (int, error)
	BaseURL      string
	Now          func() time.Time
	Log          *slog.Logger
	// MailLimits caps invitation mails; a zero field takes DefaultMailLimits' value.
	MailLimits MailLimits
	// CreateLimit caps organizations created; a zero field takes DefaultCreateLimit's value.
	CreateLimit CreateLimit
}

// Service holds the tenancy rules. Every mutation runs through the tenant gate
// with the organization locked, re-checking the actor's role; one that changes
// the organization writes exactly one audit event, one that fails or changes
// nothing (a role set to the role the member has, an update to the same name)
// writes none.
type Service struct {
	d     Deps
	store Store
}

// NewService returns the tenancy service.
func NewService(d Deps) *Service {
	mail, create := DefaultMailLimits(), DefaultCreateLimit()
	orDefault(&d.MailLimits.PerRecipient, mail.PerRecipient)
	orDefault(&d.MailLimits.PerOrganization, mail.PerOrganization)
	orDefault(&d.MailLimits.PerInviter, mail.PerInviter)
	orDefault(&d.MailLimits.Window, mail.Window)
	orDefault(&d.CreateLimit.PerUser, create.PerUser)
	orDefault(&d.CreateLimit.Window, create.Window)
	return &Service{d: d}
}

// orDefault sets *v to def when it is not positive.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

var (
	errNotMember   = apperr.New(apperr.NotFound, "member not found")
	errInvNotFound = apperr.New(apperr.NotFound, "invitation not found")
	errBadInvToken = apperr.Invalid("token", "the invitation link is invalid")
	slugRe         = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	nonSlug        = regexp.MustCompile(`[^a-z0-9]+`)
)

// --- reads ---

// OrganizationsOf returns a page of the user's organizations, ordered by name then id.
// It also returns each one's membership, so that callers can prime the role loader.
func (s *Service) OrganizationsOf(ctx context.Context, user uuid.UUID, first *int, after *string) (*OrganizationConnection, []*Member, error) {
	req, err := page.Parse[orgCursor](first, after)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.store.OrgsOfUser(ctx, s.d.DB, user, req.After, req.Limit())
	if err != nil {
		return nil, nil, fmt.Errorf("organizations of user: %w", err)
	}
	orgs := make([]*Organization, len(rows))
	members := make([]*Member, len(rows))
	for i := range rows {
		orgs[i] = &rows[i].Organization
		members[i] = &Member{OrganizationID: orgs[i].ID, UserID: user, Role: rows[i].Role, JoinedAt: rows[i].JoinedAt}
	}
	conn := page.Build(req, orgs, func(o *Organization) orgCursor { return orgCursor{o.Name, o.ID} },
		func(ctx context.Context) (int, error) { return s.store.CountOrgsOfUser(ctx, s.d.DB, user) })
	return conn, members[:len(conn.Edges)], nil
}

// Organizations returns the organizations with ids (for loaders).
func (s *Service) Organizations(ctx context.Context, ids []uuid.UUID) ([]*Organization, error) {
	return s.store.OrgsByIDs(ctx, s.d.DB, ids)
}

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
}

// MemberPages returns a page of members, ordered by join time, for each of the
// request's organizations with one query, and the members with their users (to
// prime loaders). A connection's totalCount goes through s.d.CountMembers.
func (s *Service) MemberPages(ctx context.Context, r MembersRequest) (map[uuid.UUID]*MemberConnection, []*Member, error) {
	req, err := page.Parse[memberCursor](&r.First, r.After)
	if err != nil {
		return nil, nil, err
	}
	pages, err := s.store.MembersPages(ctx, s.d.DB, r.Orgs, r.Role, req.After, req.Limit())
	if err != nil {
		return nil, nil, fmt.Errorf("members pages: %w", err)
	}
	out := make(map[uuid.UUID]*MemberConnection, len(r.Orgs))
	var all []*Member
	for _, o := range r.Orgs {
		rows := pages[o]
		key := MemberCountKey{Org: o, Role: r.Role}
		out[o] = page.Build(req, rows, func(m *Member) memberCursor { return memberCursor{m.JoinedAt, m.UserID} },
			func(ctx context.Context) (int, error) { return s.countMembers(ctx, key) })
		all = append(all, rows[:len(out[o].Edges)]...)
	}
	return out, all, nil
}

// countMembers counts through Deps.CountMembers (a per-request loader, so that
// many pages' totals cost one query) or, without one, directly.
func (s *Service) countMembers(ctx context.Context, k MemberCountKey) (int, error) {
	if s.d.CountMembers != nil {
		return s.d.CountMembers(ctx, k)
	}
	return s.store.CountMembers(ctx, s.d.DB, k.Org, k.Role)
}

// Invitations returns a page of org's invitations, newest first.
func (s *Service) Invitations(ctx context.Context, org uuid.UUID, status *InvitationStatus, first *int, after *string) (*InvitationConnection, error) {
	req, err := page.Parse[invitationCursor](first, after)
	if err != nil {
		return nil, err
	}
	now := s.d.Now()
	rows, err := s.store.InvitationsPage(ctx, s.d.DB, org, status, req.After, req.Limit(), now)
	if err != nil {
		return nil, fmt.Errorf("invitations page: %w", err)
	}
	return page.Build(req, rows, invitationKeyset, func(ctx context.Context) (int, error) {
		return s.store.CountInvitations(ctx, s.d.DB, org, status, now)
	}), nil
}

// MyInvitations returns a page of the pending, unexpired invitations addressed
// to the viewer's verified email, newest first (none while it is unverified).
func (s *Service) MyInvitations(ctx context.Context, v auth.Viewer, first *int, after *string) (*InvitationConnection, error) {
	req, err := page.Parse[invitationCursor](first, after)
	if err != nil {
		return nil, err
	}
	now := s.d.Now()
	rows, err := s.store.PendingInvitationsFor(ctx, s.d.DB, v.UserID, req.After, req.Limit(), now)
	if err != nil {
		return nil, fmt.Errorf("invitations for viewer: %w", err)
	}
	return page.Build(req, rows, invitationKeyset, func(ctx context.Context) (int, error) {
		return s.store.CountPendingInvitationsFor(ctx, s.d.DB, v.UserID, now)
	}), nil
}

func invitationKeyset(i *Invitation) invitationCursor { return invitationCursor{i.CreatedAt, i.ID} }

// --- mutations ---

// Create makes an organization with the actor as OWNER.
func (s *Service) Create(ctx context.Context, actor auth.Viewer, in CreateOrganizationInput) (*Organization, error) {
	name, err := validate.Name("name", in.Name, 100)
	if err != nil {
		return nil, err
	}
	var explicit string
	if in.Slug != nil {
		if explicit, err = checkSlug(*in.Slug); err != nil {
			return nil, err
		}
	}
	var o *Organization
	err = db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		l := s.d.CreateLimit
		n, err := s.d.Audit.CountByActorSince(ctx, tx, actor.UserID, []string{organizationCreated}, now.Add(-l.Window))
		if err != nil {
			return err
		}
		if n >= l.PerUser {
			return apperr.Limited("organizations_per_user", "you have already created %d organizations in the last %s: try again later",
				l.PerUser, window(l.Window))
		}
		o = nil
		for _, slug := range slugCandidates(name, explicit) {
			var ok bool
			if o, ok, err = s.store.InsertOrg(ctx, tx, name, slug, now); err != nil {
				return err
			}
			if ok {
				break
			}
		}
		if o == nil {
			return &apperr.Error{Code: apperr.Conflict, Message: "the slug is taken", Field: "slug"}
		}
		if _, err := s.store.InsertMember(ctx, tx, o.ID, actor.UserID, RoleOwner, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, organizationCreated, "organization", o.ID.String(),
			map[string]any{"after": map[string]any{"name": o.Name, "slug": o.Slug}}, now)
	})
	return o, err
}

// Update renames an organization or changes its slug (ADMIN or above).
func (s *Service) Update(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, in UpdateOrganizationInput) (*Organization, error) {
	var name, slug string
	var err error
	if in.Name != nil {
		if name, err = validate.Name("name", *in.Name, 100); err != nil {
			return nil, err
		}
	}
	if in.Slug != nil {
		if slug, err = checkSlug(*in.Slug); err != nil {
			return nil, err
		}
	}
	var out *Organization
	err = s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, _ *Member, now time.Time) error {
		if name == "" {
			name = o.Name
		}
		if slug == "" {
			slug = o.Slug
		}
		if name == o.Name && slug == o.Slug {
			out = o
			return nil
		}
		if out, err = s.store.UpdateOrg(ctx, tx, o.ID, name, slug, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "organization.updated", "organization", o.ID.String(), map[string]any{
			"before": map[string]any{"name": o.Name, "slug": o.Slug},
			"after":  map[string]any{"name": out.Name, "slug": out.Slug}}, now)
	})
	return out, err
}

// Invite emails an invitation to join orgID with role.
func (s *Service) Invite(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, email string, role Role) (*Invitation, error) {
	email, err := account.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if role == RoleOwner {
		return nil, apperr.Invalid("role", "ownership is never invited: transfer it instead")
	}
	var inv *Invitation
	err = s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error {
		if role.Rank() > me.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		member, err := s.store.MemberEmailExists(ctx, tx, o.ID, email)
		if err != nil {
			return err
		}
		if member {
			return &apperr.Error{Code: apperr.Conflict, Message: "this person is already a member", Field: "email"}
		}
		if err := s.checkMailLimits(ctx, tx, o.ID, actor, email, now); err != nil {
			return err
		}
		if err := s.store.ExpireStale(ctx, tx, o.ID, email, now); err != nil {
			return err
		}
		token := auth.RandomToken()
		if inv, err = s.store.InsertInvitation(ctx, tx, o.ID, email, role, actor.UserID, auth.HashToken(token), now, now.Add(InvitationTTL)); err != nil {
			return err
		}
		if err := s.sendInvitation(ctx, tx, o, inv, token); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "member.invited", "invitation", inv.ID.String(),
			map[string]any{"email": email, "role": role}, now)
	})
	return inv, err
}

// ResendInvitation gives a pending (or expired) invitation a new link and expiry.
func (s *Service) ResendInvitation(ctx context.Context, actor auth.Viewer, orgID, invID uuid.UUID) (*Invitation, error) {
	var out *Invitation
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error {
		inv, err := s.store.InvitationForUpdate(ctx, tx, o.ID, invID, now)
		if err != nil {
			return err
		}
		if inv == nil {
			return errInvNotFound
		}
		if inv.Status != InvitationPending && inv.Status != InvitationExpired {
			return apperr.New(apperr.Conflict, "the invitation is %s", strings.ToLower(string(inv.Status)))
		}
		if inv.Role.Rank() > me.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		if err := s.checkMailLimits(ctx, tx, o.ID, actor, inv.Email, now); err != nil {
			return err
		}
		token := auth.RandomToken()
		if out, err = s.store.RenewInvitation(ctx, tx, o.ID, inv.ID, auth.HashToken(token), now, now.Add(InvitationTTL)); err != nil {
			return err
		}
		if err := s.sendInvitation(ctx, tx, o, out, token); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "invitation.resent", "invitation", inv.ID.String(),
			map[string]any{"email": inv.Email, "before": map[string]any{"expiresAt": inv.ExpiresAt}, "after": map[string]any{"expiresAt": out.ExpiresAt}}, now)
	})
	return out, err
}

// RevokeInvitation withdraws a pending invitation.
func (s *Service) RevokeInvitation(ctx context.Context, actor auth.Viewer, orgID, invID uuid.UUID) (*Invitation, error) {
	var out *Invitation
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, _ *Member, now time.Time) error {
		inv, err := s.store.InvitationForUpdate(ctx, tx, o.ID, invID, now)
		if err != nil {
			return err
		}
		if inv == nil {
			return errInvNotFound
		}
		if inv.Status != InvitationPending {
			return apperr.New(apperr.Conflict, "the invitation is %s", strings.ToLower(string(inv.Status)))
		}
		if out, err = s.store.SetInvitationStatus(ctx, tx, o.ID, inv.ID, InvitationRevoked, actor.UserID, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "invitation.revoked", "invitation", inv.ID.String(),
			map[string]any{"email": inv.Email, "before": map[string]any{"status": inv.Status}, "after": map[string]any{"status": out.Status}}, now)
	})
	return out, err
}

// AcceptInvitation makes the viewer a member; their verified email must be the invited one.
func (s *Service) AcceptInvitation(ctx context.Context, actor auth.Viewer, token string) (*Member, error) {
	var m *Member
	err := s.respond(ctx, actor, token, func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *account.User, now time.Time) error {
		if !u.EmailVerified() {
			return apperr.New(apperr.Forbidden, "verify your email address first")
		}
		var err error
		if m, err = s.store.InsertMember(ctx, tx, o.ID, u.ID, inv.Role, now); err != nil {
			return err
		}
		if _, err := s.store.SetInvitationStatus(ctx, tx, o.ID, inv.ID, InvitationAccepted, u.ID, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "invitation.accepted", "member", u.ID.String(),
			map[string]any{"invitationId": inv.ID, "email": inv.Email, "after": map[string]any{"role": inv.Role}}, now)
	})
	return m, err
}

// DeclineInvitation turns an invitation down.
func (s *Service) DeclineInvitation(ctx context.Context, actor auth.Viewer, token string) error {
	return s.respond(ctx, actor, token, func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *account.User, now time.Time) error {
		if _, err := s.store.SetInvitationStatus(ctx, tx, o.ID, inv.ID, InvitationDeclined, u.ID, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "invitation.declined", "invitation", inv.ID.String(),
			map[string]any{"email": inv.Email}, now)
	})
}

// respond runs fn for a live invitation addressed to the viewer, with the
// organization and the invitation locked.
func (s *Service) respond(ctx context.Context, actor auth.Viewer, token string,
	fn func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *account.User, now time.Time) error) error {
	hash := auth.HashToken(token)
	return db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		u, err := s.user(ctx, tx, actor.UserID)
		if err != nil {
			return err
		}
		inv, err := s.store.InvitationByToken(ctx, tx, hash, now)
		if err != nil {
			return err
		}
		if inv == nil {
			return errBadInvToken
		}
		o, err := s.store.LockOrg(ctx, tx, inv.OrganizationID)
		if err != nil {
			return err
		}
		// Re-read under the locks (organization, then invitation, as revoke and
		// resend take them): a concurrent accept, revoke or resend may have won,
		// and a resend replaces the token.
		if inv, err = s.store.InvitationByTokenForUpdate(ctx, tx, o.ID, hash, now); err != nil {
			return err
		}
		if inv == nil {
			return errBadInvToken
		}
		if inv.Email != u.Email {
			return apperr.New(apperr.Forbidden, "this invitation was sent to another email address")
		}
		switch inv.Status {
		case InvitationPending:
		case InvitationExpired:
			return apperr.Invalid("token", "the invitation has expired: ask for a new one")
		case InvitationRevoked:
			return apperr.Invalid("token", "the invitation was revoked")
		case InvitationDeclined:
			return apperr.Invalid("token", "the invitation was declined")
		case InvitationAccepted:
			return apperr.New(apperr.Conflict, "the invitation was already accepted")
		}
		existing, err := s.store.MemberForUpdate(ctx, tx, o.ID, u.ID)
		if err != nil {
			return err
		}
		if existing != nil {
			return apperr.New(apperr.Conflict, "already a member of this organization")
		}
		return fn(tx, o, inv, u, now)
	})
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
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error {
		target, err := s.store.MemberForUpdate(ctx, tx, o.ID, userID)
		if err != nil {
			return err
		}
		if target == nil {
			return errNotMember
		}
		if me.Role.Rank() <= target.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you can only change the role of members below you")
		}
		if role.Rank() > me.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		if target.Role == role {
			out = target
			return nil
		}
		if out, err = s.store.SetRole(ctx, tx, o.ID, userID, role, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "member.role_changed", "member", userID.String(),
			map[string]any{"before": map[string]any{"role": target.Role}, "after": map[string]any{"role": role}}, now)
	})
	return out, err
}

// RemoveMember removes a member the actor outranks; the owner is never removed.
func (s *Service) RemoveMember(ctx context.Context, actor auth.Viewer, orgID, userID uuid.UUID) error {
	if userID == actor.UserID {
		return apperr.Invalid("userId", "use leaveOrganization to leave")
	}
	return s.inOrg(ctx, actor, orgID, RoleAdmin, func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error {
		target, err := s.store.MemberForUpdate(ctx, tx, o.ID, userID)
		if err != nil {
			return err
		}
		if target == nil {
			return errNotMember
		}
		if target.Role == RoleOwner {
			return apperr.New(apperr.Forbidden, "the owner cannot be removed")
		}
		if me.Role.Rank() <= target.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you can only remove members below you")
		}
		if err := s.store.DeleteMember(ctx, tx, o.ID, userID); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "member.removed", "member", userID.String(),
			map[string]any{"before": map[string]any{"role": target.Role}}, now)
	})
}

// Leave removes the actor from the organization; the owner must transfer first.
func (s *Service) Leave(ctx context.Context, actor auth.Viewer, orgID uuid.UUID) error {
	return s.inOrg(ctx, actor, orgID, RoleMember, func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error {
		if me.Role == RoleOwner {
			return apperr.New(apperr.Conflict, "the owner cannot leave: transfer ownership first")
		}
		if err := s.store.DeleteMember(ctx, tx, o.ID, actor.UserID); err != nil {
			return err
		}
		return s.audit(ctx, tx, o.ID, actor, "member.left", "member", actor.UserID.String(),
			map[string]any{"before": map[string]any{"role": me.Role}}, now)
	})
}

// TransferOwnership makes another verified member the owner; the old owner becomes ADMIN.
func (s *Service) TransferOwnership(ctx context.Context, actor auth.Viewer, orgID, newOwner uuid.UUID) (*Organization, error) {
	if newOwner == actor.UserID {
		return nil, apperr.Invalid("newOwnerId", "you already own this organization")
	}
	var out *Organization
	err := s.inOrg(ctx, actor, orgID, RoleOwner, func(tx *sqlx.Tx, o *Organization, _ *Member, now time.Time) error {
		target, err := s.store.MemberForUpdate(ctx, tx, o.ID, newOwner)
		if err != nil {
			return err
		}
		if target == nil {
			return &apperr.Error{Code: apperr.NotFound, Message: "the new owner must already be a member", Field: "newOwnerId"}
		}
		u, err := s.user(ctx, tx, newOwner)
		if err != nil {
			return err
		}
		if !u.EmailVerified() {
			return apperr.Invalid("newOwnerId", "the new owner must verify their email first")
		}
		// Demote first: the partial unique index allows one owner at a time, and
		// the deferred trigger checks at commit that there is one.
		if _, err := s.store.SetRole(ctx, tx, o.ID, actor.UserID, RoleAdmin, now); err != nil {
			return err
		}
		if _, err := s.store.SetRole(ctx, tx, o.ID, newOwner, RoleOwner, now); err != nil {
			return err
		}
		out = o
		return s.audit(ctx, tx, o.ID, actor, "ownership.transferred", "member", newOwner.String(), map[string]any{
			"before": map[string]any{"owner": actor.UserID, "newOwnerRole": target.Role},
			"after":  map[string]any{"owner": newOwner, "previousOwnerRole": RoleAdmin}}, now)
	})
	return out, err
}

// inOrg runs fn through the tenant gate with the organization locked: every
// mutation of this area changes membership or invitations.
func (s *Service) inOrg(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, role Role,
	fn func(tx *sqlx.Tx, o *Organization, me *Member, now time.Time) error) error {
	return s.d.Gate.Run(ctx, actor.UserID, orgID, role, LockOrganization, func(t *Tx) error {
		return fn(t.Tx, t.Org, t.Actor, t.Now)
	})
}

func (s *Service) audit(ctx context.Context, tx *sqlx.Tx, org uuid.UUID, actor auth.Viewer, action, targetType, targetID string, meta map[string]any, now time.Time) error {
	return s.d.Audit.Record(ctx, tx, audit.Entry{OrganizationID: org, ActorID: actor.UserID, Action: action,
		TargetType: targetType, TargetID: targetID, Metadata: meta, At: now})
}

// checkMailLimits refuses one more invitation mail from org to email, asked
// for by actor, when it would exceed s.d.MailLimits. It runs with the
// organization locked, and locks the actor (CountByActorSince) last: each count
// includes every mail committed before, and no other mail of org or of actor
// can commit until this transaction ends.
func (s *Service) checkMailLimits(ctx context.Context, tx *sqlx.Tx, org uuid.UUID, actor auth.Viewer, email string, now time.Time) error {
	l := s.d.MailLimits
	all, toEmail, err := s.d.Audit.CountSince(ctx, tx, org, invitationMailActions, now.Add(-l.Window), "email", email)
	if err != nil {
		return err
	}
	if toEmail >= l.PerRecipient {
		return apperr.Limited("invitation_mail_per_recipient", "this address has already been sent %d invitation emails from this organization in the last %s: try again later",
			l.PerRecipient, window(l.Window))
	}
	if all >= l.PerOrganization {
		return apperr.Limited("invitation_mail_per_organization", "this organization has already sent %d invitation emails in the last %s: try again later",
			l.PerOrganization, window(l.Window))
	}
	mine, err := s.d.Audit.CountByActorSince(ctx, tx, actor.UserID, invitationMailActions, now.Add(-l.Window))
	if err != nil {
		return err
	}
	if mine >= l.PerInviter {
		return apperr.Limited("invitation_mail_per_inviter", "you have already sent %d invitation emails from your organizations in the last %s: try again later",
			l.PerInviter, window(l.Window))
	}
	return nil
}

// window names a limit's window: "hour" for one hour, "24 hours" for a whole
// number of them, else the duration.
func window(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}

// sendInvitation queues the invitation mail. The organization's name is the only
// text in it that a user chose: it appears only as quoted, link-proof data
// (mail.Quote), in the subject and on a line of its own, never next to the link.
func (s *Service) sendInvitation(ctx context.Context, tx *sqlx.Tx, o *Organization, inv *Invitation, token string) error {
	name := mail.Quote(o.Name)
	return mail.Enqueue(ctx, tx, mail.Message{
		To:      inv.Email,
		Subject: fmt.Sprintf("You are invited to join the organization %s on tenantgraph", name),
		Body: fmt.Sprintf("Hello,\n\n"+
			"You are invited to join an organization on tenantgraph as %s. The organization is named:\n\n"+
			"    %s\n\n"+
			"Its members chose this name; tenantgraph does not check it. Follow no address or instruction it may contain.\n\n"+
			"To accept, sign in to tenantgraph with this email address and open:\n\n"+
			"%s/accept-invitation?token=%s\n\n"+
			"The link works once, until %s. If you do not know this organization, ignore this email.\n",
			strings.ToLower(string(inv.Role)), name, s.d.BaseURL, token, inv.ExpiresAt.UTC().Format(time.RFC1123)),
	})
}

func (s *Service) user(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*account.User, error) {
	us, err := s.d.Users(ctx, q, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return nil, apperr.ErrUnauthenticated
	}
	return us[0], nil
}

func checkSlug(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if len(s) < 3 || len(s) > 48 || !slugRe.MatchString(s) {
		return "", apperr.Invalid("slug", "the slug must be 3 to 48 lower-case letters, digits and single dashes")
	}
	return s, nil
}

// slugCandidates lists the slugs to try: the explicit one only, else one derived
// from the name, then the same with numeric suffixes, then random ones.
func slugCandidates(name, explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	base := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if len(base) < 3 {
		base = strings.Trim("org-"+base, "-")
	}
	out := []string{base}
	for i := 2; i <= 5; i++ {
		out = append(out, fmt.Sprintf("%s-%d", base, i))
	}
	for range 3 {
		out = append(out, base+"-"+strings.ReplaceAll(uuid.NewString()[:6], "-", "x"))
	}
	return out
}
