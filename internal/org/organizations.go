package org

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/money"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
	"tenantgraph/internal/tenant"
)

// OrganizationsOf returns a page of the user's organizations, ordered by name then id.
// It also returns each one's membership, so that callers can prime the role loader.
func (s *Service) OrganizationsOf(ctx context.Context, user uuid.UUID, first *int, after *string) (*OrganizationConnection, []*Member, error) {
	req, err := page.Parse[string](first, after, "")
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
	conn := page.Build(req, orgs, func(o *Organization) page.Key[string] { return page.Key[string]{V: o.Name, ID: o.ID} },
		func(ctx context.Context) (int, error) { return s.store.CountOrgsOfUser(ctx, s.d.DB, user) })
	return conn, members[:len(conn.Edges)], nil
}

// Organizations returns the organizations with ids (for loaders).
func (s *Service) Organizations(ctx context.Context, ids []uuid.UUID) ([]*Organization, error) {
	return s.store.OrgsByIDs(ctx, s.d.DB, ids)
}

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
	currency, tz := "USD", "UTC"
	if in.Currency != nil {
		if currency, err = checkCurrency(*in.Currency); err != nil {
			return nil, err
		}
	}
	if in.TimeZone != nil {
		tz = strings.TrimSpace(*in.TimeZone)
	}
	var o *Organization
	err = db.RetryTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
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
		if err := s.checkTimeZone(ctx, tx, tz); err != nil {
			return err
		}
		o = nil
		for _, slug := range slugCandidates(name, explicit) {
			var ok bool
			if o, ok, err = s.store.InsertOrg(ctx, tx, name, slug, currency, tz, now); err != nil {
				return err
			}
			if ok {
				break
			}
		}
		if o == nil {
			return constraints["organizations_slug_key"].At("slug")
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
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, RoleAdmin, tenant.LockOrganization, func(t *tenant.Tx) (*Organization, error) {
		name, slug := cmp.Or(name, t.Org.Name), cmp.Or(slug, t.Org.Slug)
		if name == t.Org.Name && slug == t.Org.Slug {
			return t.Org, nil
		}
		out, err := s.store.UpdateOrg(ctx, t, t.Org.ID, name, slug, t.Now)
		if err != nil {
			return nil, constraints.Map(err, "")
		}
		return out, t.Audit(ctx, "organization.updated", "organization", t.Org.ID.String(), map[string]any{
			"before": map[string]any{"name": t.Org.Name, "slug": t.Org.Slug},
			"after":  map[string]any{"name": out.Name, "slug": out.Slug}})
	})
}

// SetCurrency changes the organization's currency (OWNER only): only while it
// has no orders (CONFLICT on currency after the first; the database decides,
// orders_currency_fkey). Prices are not converted: they are read in the new
// currency.
func (s *Service) SetCurrency(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, code string) (*Organization, error) {
	code, err := checkCurrency(code)
	if err != nil {
		return nil, err
	}
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, RoleOwner, tenant.LockOrganization, func(t *tenant.Tx) (*Organization, error) {
		if code == t.Org.Currency {
			return t.Org, nil
		}
		out, err := s.store.SetCurrency(ctx, t, t.Org.ID, code, t.Now)
		if err != nil {
			return nil, constraints.Map(err, "")
		}
		return out, t.Audit(ctx, "organization.currency_changed", "organization", t.Org.ID.String(), map[string]any{
			"before": map[string]any{"currency": t.Org.Currency}, "after": map[string]any{"currency": code}})
	})
}

// SetTimeZone changes the time zone the organization's sales are counted by
// day in (ADMIN or above); the daily roll-up is rebuilt in the same
// transaction (by the database's trigger).
func (s *Service) SetTimeZone(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, name string) (*Organization, error) {
	name = strings.TrimSpace(name)
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, RoleAdmin, tenant.LockOrganization, func(t *tenant.Tx) (*Organization, error) {
		if err := s.checkTimeZone(ctx, t, name); err != nil {
			return nil, err
		}
		if name == t.Org.TimeZone {
			return t.Org, nil
		}
		out, err := s.store.SetTimeZone(ctx, t, t.Org.ID, name, t.Now)
		if err != nil {
			return nil, constraints.Map(err, "")
		}
		return out, t.Audit(ctx, "organization.time_zone_changed", "organization", t.Org.ID.String(), map[string]any{
			"before": map[string]any{"timeZone": t.Org.TimeZone}, "after": map[string]any{"timeZone": name}})
	})
}

func checkCurrency(raw string) (string, error) {
	code := strings.TrimSpace(raw)
	if !money.Known(code) {
		return "", apperr.Invalid("currency", "the currency must be an active ISO 4217 code in capitals, such as USD or EUR")
	}
	return code, nil
}

// checkTimeZone accepts the IANA names PostgreSQL knows (it counts the days).
func (s *Service) checkTimeZone(ctx context.Context, q sqlx.QueryerContext, name string) error {
	bad := apperr.Invalid("timeZone", "the time zone must be an IANA name, such as Europe/Paris or UTC")
	if !tzRe.MatchString(name) {
		return bad
	}
	ok, err := s.store.TimeZoneKnown(ctx, q, name)
	if err != nil {
		return fmt.Errorf("time zone: %w", err)
	}
	if !ok {
		return bad
	}
	return nil
}

var tzRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+/-]{0,63}$`)

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
