package org

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/mail"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
	"tenantgraph/internal/tenant"
)

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// Invitations returns a page of org's invitations, newest first.
func (s *Service) Invitations(ctx context.Context, org uuid.UUID, status *InvitationStatus, first *int, after *string) (*InvitationConnection, error) {
	req, err := page.Parse[time.Time](first, after, "")
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
	req, err := page.Parse[time.Time](first, after, "")
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

func invitationKeyset(i *Invitation) page.Key[time.Time] {
	return page.Key[time.Time]{V: i.CreatedAt, ID: i.ID}
}

// Invitation returns org's invitation id (nil when there is none).
func (s *Service) Invitation(ctx context.Context, orgID, id uuid.UUID) (*Invitation, error) {
	inv, err := s.store.Invitation(ctx, s.d.DB, orgID, id, s.d.Now())
	if err != nil {
		return nil, fmt.Errorf("invitation: %w", err)
	}
	return inv, nil
}

// Invite emails an invitation to join orgID with role.
func (s *Service) Invite(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, email string, role Role) (*Invitation, error) {
	email, err := validate.Email(email)
	if err != nil {
		return nil, err
	}
	if role == RoleOwner {
		return nil, apperr.Invalid("role", "ownership is never invited: transfer it instead")
	}
	var inv *Invitation
	err = s.inOrg(ctx, actor, orgID, RoleAdmin, func(t *tenant.Tx) error {
		if role.Rank() > t.Actor.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		member, err := s.store.MemberEmailExists(ctx, t, t.Org.ID, email)
		if err != nil {
			return err
		}
		if member {
			return &apperr.Error{Code: apperr.Conflict, Message: "this person is already a member", Field: "email"}
		}
		if err := s.checkMailLimits(ctx, t, t.Org.ID, actor, email, t.Now); err != nil {
			return err
		}
		if err := s.store.ExpireStale(ctx, t, t.Org.ID, email, t.Now); err != nil {
			return err
		}
		token := auth.RandomToken()
		if inv, err = s.store.InsertInvitation(ctx, t, t.Org.ID, email, role, actor.UserID, auth.HashToken(token), t.Now, t.Now.Add(InvitationTTL)); err != nil {
			return err
		}
		if err := s.sendInvitation(ctx, t, t.Org, inv, token); err != nil {
			return err
		}
		return t.Audit(ctx, "member.invited", "invitation", inv.ID.String(),
			map[string]any{"email": email, "role": role})
	})
	return inv, err
}

// ResendInvitation gives a pending (or expired) invitation a new link and expiry.
func (s *Service) ResendInvitation(ctx context.Context, actor auth.Viewer, orgID, invID uuid.UUID) (*Invitation, error) {
	var out *Invitation
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(t *tenant.Tx) error {
		inv, err := s.lockInvitation(ctx, t, invID)
		if err != nil {
			return err
		}
		if inv.Status != InvitationPending && inv.Status != InvitationExpired {
			return apperr.New(apperr.Conflict, "the invitation is %s", strings.ToLower(string(inv.Status)))
		}
		if inv.Role.Rank() > t.Actor.Role.Rank() {
			return apperr.New(apperr.Forbidden, "you cannot grant a role above your own")
		}
		if err := s.checkMailLimits(ctx, t, t.Org.ID, actor, inv.Email, t.Now); err != nil {
			return err
		}
		token := auth.RandomToken()
		if out, err = s.store.RenewInvitation(ctx, t, t.Org.ID, inv.ID, auth.HashToken(token), t.Now, t.Now.Add(InvitationTTL)); err != nil {
			return err
		}
		if err := s.sendInvitation(ctx, t, t.Org, out, token); err != nil {
			return err
		}
		return t.Audit(ctx, "invitation.resent", "invitation", inv.ID.String(),
			map[string]any{"email": inv.Email, "before": map[string]any{"expiresAt": inv.ExpiresAt}, "after": map[string]any{"expiresAt": out.ExpiresAt}})
	})
	return out, err
}

// lockInvitation locks the organization's invitation id, with its status as
// of t.Now: NOT_FOUND when there is none.
func (s *Service) lockInvitation(ctx context.Context, t *tenant.Tx, id uuid.UUID) (*Invitation, error) {
	return tenant.LockRow(ctx, t, func(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Invitation, error) {
		return s.store.InvitationForUpdate(ctx, q, org, id, t.Now)
	}, id, errInvNotFound)
}

// RevokeInvitation withdraws a pending invitation.
func (s *Service) RevokeInvitation(ctx context.Context, actor auth.Viewer, orgID, invID uuid.UUID) (*Invitation, error) {
	var out *Invitation
	err := s.inOrg(ctx, actor, orgID, RoleAdmin, func(t *tenant.Tx) error {
		inv, err := s.lockInvitation(ctx, t, invID)
		if err != nil {
			return err
		}
		if inv.Status != InvitationPending {
			return apperr.New(apperr.Conflict, "the invitation is %s", strings.ToLower(string(inv.Status)))
		}
		if out, err = s.store.SetInvitationStatus(ctx, t, t.Org.ID, inv.ID, InvitationRevoked, actor.UserID, t.Now); err != nil {
			return err
		}
		return t.Audit(ctx, "invitation.revoked", "invitation", inv.ID.String(),
			map[string]any{"email": inv.Email, "before": map[string]any{"status": inv.Status}, "after": map[string]any{"status": out.Status}})
	})
	return out, err
}

// AcceptInvitation makes the viewer a member; their verified email must be the invited one.
func (s *Service) AcceptInvitation(ctx context.Context, actor auth.Viewer, token string) (*Member, error) {
	var m *Member
	err := s.respond(ctx, actor, token, func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *auth.User, now time.Time) error {
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
	return s.respond(ctx, actor, token, func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *auth.User, now time.Time) error {
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
	fn func(tx *sqlx.Tx, o *Organization, inv *Invitation, u *auth.User, now time.Time) error) error {
	hash := auth.HashToken(token)
	return db.RetryTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
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
		o, err := tenant.LockOrg(ctx, tx, inv.OrganizationID)
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

// can commit until this transaction ends.
func (s *Service) checkMailLimits(ctx context.Context, tx sqlx.ExtContext, org uuid.UUID, actor auth.Viewer, email string, now time.Time) error {
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
func (s *Service) sendInvitation(ctx context.Context, tx sqlx.ExtContext, o *Organization, inv *Invitation, token string) error {
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
