package org

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/tenant"
)

// UserLookup finds users by id through q (the account area's store): inside a
// transaction it must use that transaction, never a second pool connection, or
// lock waiters holding the pool's other connections could starve it.
type UserLookup func(ctx context.Context, q sqlx.QueryerContext, ids []uuid.UUID) ([]*auth.User, error)

// Auditor records an audit event in the caller's transaction and counts recent
// ones (the audit area).
type Auditor interface {
	tenant.Recorder
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

// DefaultMailLimits are the limits of a server (docs/api.md, "Invitation mail limits").
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

// DefaultCreateLimit is the limit of a server (docs/api.md, "Organizations per user").
func DefaultCreateLimit() CreateLimit { return CreateLimit{PerUser: 20, Window: 24 * time.Hour} }

// invitationMailActions are the audit actions that each record one invitation
// mail; migrations/00005 (per organization) and 00012 (per actor, with
// organizationCreated) index exactly these.
var invitationMailActions = []string{"member.invited", "invitation.resent"}

const organizationCreated = "organization.created"

// Deps are what the service needs.
type Deps struct {
	DB    *sqlx.DB
	Gate  *tenant.Gate
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

// constraints are the violations of the area's constraints that a client may cause.
var constraints = tenant.Constraints{
	"organizations_slug_key": {Code: apperr.Conflict, Field: "slug", Message: "the slug is taken"},
	"orders_currency_fkey": {Code: apperr.Conflict, Field: "currency",
		Message: "the organization has orders: its currency can no longer change"},
}

var (
	errNotMember   = apperr.New(apperr.NotFound, "member not found")
	errInvNotFound = apperr.New(apperr.NotFound, "invitation not found")
	errBadInvToken = apperr.Invalid("token", "the invitation link is invalid")
	slugRe         = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	nonSlug        = regexp.MustCompile(`[^a-z0-9]+`)
)

// inOrg runs fn through the tenant gate with the organization locked: every
// mutation of this area changes membership or invitations.
func (s *Service) inOrg(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, role Role, fn func(t *tenant.Tx) error) error {
	return s.d.Gate.Run(ctx, actor.UserID, orgID, role, tenant.LockOrganization, fn)
}

// audit records an event of a transaction outside the gate (creating an
// organization, answering an invitation: the actor is no member yet).
func (s *Service) audit(ctx context.Context, tx sqlx.ExecerContext, org uuid.UUID, actor auth.Viewer, action, targetType, targetID string, meta map[string]any, now time.Time) error {
	return s.d.Audit.Record(ctx, tx, tenant.Entry{OrganizationID: org, ActorID: actor.UserID, Action: action,
		TargetType: targetType, TargetID: targetID, Metadata: meta, At: now})
}

// checkMailLimits refuses one more invitation mail from org to email, asked
// for by actor, when it would exceed s.d.MailLimits. It runs with the
// organization locked, and locks the actor (CountByActorSince) last: each count

func (s *Service) user(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*auth.User, error) {
	us, err := s.d.Users(ctx, q, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return nil, apperr.ErrUnauthenticated
	}
	return us[0], nil
}
