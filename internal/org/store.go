package org

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
)

// Store is the tenancy SQL. Every query on tenant data is scoped by organization_id.
type Store struct{}

const orgCols = `o.id, o.name, o.slug, o.created_at, o.currency, o.time_zone`

// InsertOrg creates an organization unless slug is taken (ok false).
func (Store) InsertOrg(ctx context.Context, q sqlx.QueryerContext, name, slug, currency, tz string, now time.Time) (*Organization, bool, error) {
	var o Organization
	err := sqlx.GetContext(ctx, q, &o, `
		INSERT INTO organizations AS o (name, slug, currency, time_zone, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (slug) DO NOTHING RETURNING `+orgCols, name, slug, currency, tz, now)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return &o, err == nil, err
}

func (Store) UpdateOrg(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, name, slug string, now time.Time) (*Organization, error) {
	var o Organization
	err := sqlx.GetContext(ctx, q, &o, `
		UPDATE organizations o SET name = $2, slug = $3, updated_at = $4 WHERE o.id = $1 RETURNING `+orgCols, id, name, slug, now)
	return &o, err
}

// SetCurrency changes org's currency: refused by orders_currency_fkey while an
// order uses the old one.
func (Store) SetCurrency(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, currency string, now time.Time) (*Organization, error) {
	var o Organization
	err := sqlx.GetContext(ctx, q, &o, `
		UPDATE organizations o SET currency = $2, updated_at = $3 WHERE o.id = $1 RETURNING `+orgCols, id, currency, now)
	return &o, err
}

// SetTimeZone changes org's time zone (its trigger rebuilds the sales roll-up).
func (Store) SetTimeZone(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, tz string, now time.Time) (*Organization, error) {
	var o Organization
	err := sqlx.GetContext(ctx, q, &o, `
		UPDATE organizations o SET time_zone = $2, updated_at = $3 WHERE o.id = $1 RETURNING `+orgCols, id, tz, now)
	return &o, err
}

// TimeZoneKnown reports whether PostgreSQL knows the time zone name (it
// computes the organization's days in it).
func (Store) TimeZoneKnown(ctx context.Context, q sqlx.QueryerContext, name string) (bool, error) {
	var ok bool
	err := sqlx.GetContext(ctx, q, &ok, `SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)`, name)
	return ok, err
}

func (Store) OrgsByIDs(ctx context.Context, q sqlx.QueryerContext, ids []uuid.UUID) ([]*Organization, error) {
	var out []*Organization
	err := sqlx.SelectContext(ctx, q, &out, `SELECT `+orgCols+` FROM organizations o WHERE o.id = ANY($1)`, pq.Array(ids))
	return out, err
}

// orgOrder is the viewer's organization list's: by name (case-insensitively,
// then byte order, whatever the database's collation), then id.
var orgOrder = page.Order{Col: "o.name", ID: "o.id", Fold: true}

type orgRow struct {
	Organization
	Role     Role      `db:"role"`
	JoinedAt time.Time `db:"joined_at"`
}

// OrgsOfUser returns up to limit of user's organizations after cur (a name and
// id), in orgOrder, with the user's role.
func (Store) OrgsOfUser(ctx context.Context, q sqlx.QueryerContext, user uuid.UUID, cur *page.Key[string], limit int) ([]orgRow, error) {
	var rows []orgRow
	after, args := page.After(orgOrder, cur, []any{user, limit})
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT `+orgCols+`, m.role, m.created_at AS joined_at
		FROM organization_members m JOIN organizations o ON o.id = m.organization_id
		WHERE m.user_id = $1`+after+`
		ORDER BY `+orgOrder.By()+` LIMIT $2`, args...)
	return rows, err
}

func (Store) CountOrgsOfUser(ctx context.Context, q sqlx.QueryerContext, user uuid.UUID) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT count(*) FROM organization_members WHERE user_id = $1`, user)
	return n, err
}

// --- members ---

const memberCols = `m.organization_id, m.user_id, m.role, m.created_at`

func (Store) InsertMember(ctx context.Context, q sqlx.QueryerContext, org, user uuid.UUID, role Role, now time.Time) (*Member, error) {
	var m Member
	err := sqlx.GetContext(ctx, q, &m, `
		INSERT INTO organization_members AS m (organization_id, user_id, role, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4) RETURNING `+memberCols, org, user, role, now)
	if db.IsViolation(err, db.UniqueViolation, "organization_members_pkey") {
		return nil, apperr.New(apperr.Conflict, "already a member of this organization")
	}
	return &m, err
}

// MemberForUpdate locks and returns a membership; nil when user is not a member of org.
func (Store) MemberForUpdate(ctx context.Context, q sqlx.QueryerContext, org, user uuid.UUID) (*Member, error) {
	return db.GetOrNil[Member](ctx, q, `
		SELECT `+memberCols+` FROM organization_members m WHERE m.organization_id = $1 AND m.user_id = $2 FOR UPDATE`, org, user)
}

func (Store) SetRole(ctx context.Context, q sqlx.QueryerContext, org, user uuid.UUID, role Role, now time.Time) (*Member, error) {
	var m Member
	err := sqlx.GetContext(ctx, q, &m, `
		UPDATE organization_members m SET role = $3, updated_at = $4
		WHERE m.organization_id = $1 AND m.user_id = $2 RETURNING `+memberCols, org, user, role, now)
	return &m, err
}

func (Store) DeleteMember(ctx context.Context, q sqlx.ExecerContext, org, user uuid.UUID) error {
	_, err := q.ExecContext(ctx, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, org, user)
	return err
}

// MemberEmailExists reports whether someone with email is a member of org.
func (Store) MemberEmailExists(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, email string) (bool, error) {
	var ok bool
	err := sqlx.GetContext(ctx, q, &ok, `
		SELECT EXISTS (SELECT 1 FROM organization_members m JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = $1 AND lower(u.email) = $2)`, org, email)
	return ok, err
}

// Memberships returns the memberships among keys (in no particular order).
func (Store) Memberships(ctx context.Context, q sqlx.QueryerContext, keys []MemberKey) ([]*Member, error) {
	orgs, users := db.Pairs(keys, func(k MemberKey) (uuid.UUID, uuid.UUID) { return k.Org, k.User })
	var out []*Member
	err := sqlx.SelectContext(ctx, q, &out, `
		SELECT `+memberCols+` FROM organization_members m
		JOIN unnest($1::uuid[], $2::uuid[]) AS k(org, usr) ON m.organization_id = k.org AND m.user_id = k.usr`,
		orgs, users)
	return out, err
}

// MemberCounts returns, for each key, the number of members of its organization
// with its role ("" for every role), with one query.
func (Store) MemberCounts(ctx context.Context, q sqlx.QueryerContext, keys []MemberCountKey) (map[MemberCountKey]int, error) {
	orgs := make([]uuid.UUID, len(keys))
	for i, k := range keys {
		orgs[i] = k.Org
	}
	var rows []struct {
		Org  uuid.UUID `db:"organization_id"`
		Role Role      `db:"role"`
		N    int       `db:"n"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT organization_id, role, count(*) AS n FROM organization_members
		WHERE organization_id = ANY($1) GROUP BY organization_id, role`, pq.Array(orgs))
	out := make(map[MemberCountKey]int, len(keys))
	for _, r := range rows {
		out[MemberCountKey{Org: r.Org}] += r.N
		out[MemberCountKey{Org: r.Org, Role: r.Role}] = r.N
	}
	return out, err
}

type memberUserRow struct {
	Member
	UEmail      string     `db:"u_email"`
	UName       string     `db:"u_name"`
	UVerifiedAt *time.Time `db:"u_verified_at"`
	UCreatedAt  time.Time  `db:"u_created_at"`
}

func (r memberUserRow) withUser() *Member {
	m := r.Member
	m.User = &auth.User{ID: r.UserID, Email: r.UEmail, Name: r.UName, EmailVerifiedAt: r.UVerifiedAt, CreatedAt: r.UCreatedAt}
	return &m
}

const memberUserCols = memberCols + `, u.email AS u_email, u.name AS u_name, u.email_verified_at AS u_verified_at, u.created_at AS u_created_at`

// Owners returns the owner of each of orgs, with the user.
func (Store) Owners(ctx context.Context, q sqlx.QueryerContext, orgs []uuid.UUID) ([]*Member, error) {
	var rows []memberUserRow
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT `+memberUserCols+` FROM organization_members m JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = ANY($1) AND m.role = 'OWNER'`, pq.Array(orgs))
	out := make([]*Member, len(rows))
	for i, r := range rows {
		out[i] = r.withUser()
	}
	return out, err
}

// memberOrder is the member lists': by join time, then user id.
var memberOrder = page.Order{Col: "m.created_at", ID: "m.user_id"}

// MembersPages returns, for each of orgs, up to limit members with role ("" for
// every role) after cur (a join time and user id), in memberOrder, with their users.
func (Store) MembersPages(ctx context.Context, q sqlx.QueryerContext, orgs []uuid.UUID, role Role, cur *page.Key[time.Time], limit int, counted bool) (map[uuid.UUID][]*Member, map[uuid.UUID]int, error) {
	after, args := page.After(memberOrder, cur, []any{pq.Array(orgs), role, limit})
	// counted: each organization's member count (every role) in the same
	// statement, an index-only count per organization, for the dashboard's
	// memberCount next to its members.
	total, count := "0", ""
	if counted {
		total, count = "c.n", `
		CROSS JOIN LATERAL (SELECT count(*) AS n FROM organization_members c WHERE c.organization_id = k.org) c`
	}
	rows, err := q.QueryContext(ctx, `
		SELECT `+total+` AS total, p.* FROM unnest($1::uuid[]) AS k(org)`+count+` CROSS JOIN LATERAL (
			SELECT `+memberUserCols+`
			FROM organization_members m JOIN users u ON u.id = m.user_id
			WHERE m.organization_id = k.org AND ($2 = '' OR m.role = $2)`+after+`
			ORDER BY `+memberOrder.By()+` LIMIT $3
		) p`, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	pages := make(map[uuid.UUID][]*Member, len(orgs))
	var totals map[uuid.UUID]int
	if counted {
		totals = make(map[uuid.UUID]int, len(orgs))
	}
	// Scanned by hand, not by sqlx: its reflection was a tenth of a
	// dashboard request's CPU. The columns are memberUserCols'.
	for rows.Next() {
		var n int
		m, u := &Member{}, &auth.User{}
		if err := rows.Scan(&n, &m.OrganizationID, &m.UserID, &m.Role, &m.JoinedAt,
			&u.Email, &u.Name, &u.EmailVerifiedAt, &u.CreatedAt); err != nil {
			return nil, nil, err
		}
		u.ID, m.User = m.UserID, u
		pages[m.OrganizationID] = append(pages[m.OrganizationID], m)
		if counted {
			totals[m.OrganizationID] = n
		}
	}
	return pages, totals, rows.Err()
}

// --- invitations ---

// invitationCols computes EXPIRED for pending invitations past their expiry ($now).
const invitationCols = `i.id, i.organization_id, i.email, i.role, i.invited_by, i.expires_at, i.created_at,
	CASE WHEN i.status = 'PENDING' AND i.expires_at <= $1 THEN 'EXPIRED' ELSE i.status END AS status`

// ExpireStale marks org's pending, expired invitations for email EXPIRED, making room for a new one.
func (Store) ExpireStale(ctx context.Context, q sqlx.ExecerContext, org uuid.UUID, email string, now time.Time) error {
	_, err := q.ExecContext(ctx, `
		UPDATE invitations SET status = 'EXPIRED', updated_at = $3
		WHERE organization_id = $1 AND email = $2 AND status = 'PENDING' AND expires_at <= $3`, org, email, now)
	return err
}

func (Store) InsertInvitation(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, email string, role Role, by uuid.UUID, hash []byte, now, expires time.Time) (*Invitation, error) {
	var inv Invitation
	err := sqlx.GetContext(ctx, q, &inv, `
		INSERT INTO invitations AS i (organization_id, email, role, token_hash, invited_by, expires_at, created_at, updated_at)
		VALUES ($2, $3, $4, $5, $6, $7, $1, $1) RETURNING `+invitationCols, now, org, email, role, hash, by, expires)
	if db.IsViolation(err, db.UniqueViolation, "invitations_one_pending") {
		return nil, &apperr.Error{Code: apperr.Conflict, Message: "this email already has a pending invitation (resend it instead)", Field: "email"}
	}
	return &inv, err
}

// Invitation returns org's invitation id; nil when org has no such invitation.
func (Store) Invitation(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, now time.Time) (*Invitation, error) {
	return invitation(ctx, q, org, id, now, "")
}

// InvitationForUpdate locks org's invitation id; nil when org has no such invitation.
func (Store) InvitationForUpdate(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, now time.Time) (*Invitation, error) {
	return invitation(ctx, q, org, id, now, " FOR UPDATE")
}

func invitation(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, now time.Time, lock string) (*Invitation, error) {
	return db.GetOrNil[Invitation](ctx, q, `
		SELECT `+invitationCols+` FROM invitations i WHERE i.organization_id = $2 AND i.id = $3`+lock, now, org, id)
}

// InvitationByToken returns the invitation a token belongs to; nil when none. Tokens are
// unique per organization only (invitations_org_token_key): when several organizations
// hold the same hash, none is picked and the token is treated as unknown.
func (Store) InvitationByToken(ctx context.Context, q sqlx.QueryerContext, hash []byte, now time.Time) (*Invitation, error) {
	var invs []Invitation
	if err := sqlx.SelectContext(ctx, q, &invs, `SELECT `+invitationCols+` FROM invitations i WHERE i.token_hash = $2 LIMIT 2`, now, hash); err != nil {
		return nil, err
	}
	if len(invs) != 1 {
		return nil, nil
	}
	return &invs[0], nil
}

// InvitationByTokenForUpdate locks org's invitation whose current token is hash; nil when none.
func (Store) InvitationByTokenForUpdate(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, hash []byte, now time.Time) (*Invitation, error) {
	return db.GetOrNil[Invitation](ctx, q, `
		SELECT `+invitationCols+` FROM invitations i WHERE i.organization_id = $2 AND i.token_hash = $3 FOR UPDATE`, now, org, hash)
}

func (Store) SetInvitationStatus(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, status InvitationStatus, by uuid.UUID, now time.Time) (*Invitation, error) {
	var inv Invitation
	err := sqlx.GetContext(ctx, q, &inv, `
		UPDATE invitations i SET status = $4, responded_by = $5, updated_at = $1
		WHERE i.organization_id = $2 AND i.id = $3 RETURNING `+invitationCols, now, org, id, status, by)
	return &inv, err
}

// RenewInvitation gives an invitation a new token and expiry; the old token stops working.
func (Store) RenewInvitation(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, hash []byte, now, expires time.Time) (*Invitation, error) {
	var inv Invitation
	err := sqlx.GetContext(ctx, q, &inv, `
		UPDATE invitations i SET token_hash = $4, expires_at = $5, status = 'PENDING', updated_at = $1
		WHERE i.organization_id = $2 AND i.id = $3 RETURNING `+invitationCols, now, org, id, hash, expires)
	if db.IsViolation(err, db.UniqueViolation, "invitations_one_pending") {
		return nil, apperr.New(apperr.Conflict, "a newer invitation for this email is pending")
	}
	return &inv, err
}

// invitationOrder is the invitation lists': newest first.
var invitationOrder = page.Order{Col: "i.created_at", ID: "i.id", Dir: page.Desc}

// statusIs is the invitation filter on the status as read ($1 is now): EXPIRED
// covers pending invitations past their expiry, PENDING only live ones.
const statusIs = `($3::text IS NULL
	OR ($3 = 'PENDING' AND i.status = 'PENDING' AND i.expires_at > $1)
	OR ($3 = 'EXPIRED' AND (i.status = 'EXPIRED' OR (i.status = 'PENDING' AND i.expires_at <= $1)))
	OR ($3 NOT IN ('PENDING', 'EXPIRED') AND i.status = $3))`

// InvitationsPage returns up to limit of org's invitations with status (nil for
// any) after cur (a creation time and id), in invitationOrder.
func (Store) InvitationsPage(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, status *InvitationStatus, cur *page.Key[time.Time], limit int, now time.Time) ([]*Invitation, error) {
	var out []*Invitation
	after, args := page.After(invitationOrder, cur, []any{now, org, status, limit})
	err := sqlx.SelectContext(ctx, q, &out, `
		SELECT `+invitationCols+` FROM invitations i WHERE i.organization_id = $2 AND `+statusIs+after+`
		ORDER BY `+invitationOrder.By()+` LIMIT $4`, args...)
	return out, err
}

// CountInvitations counts org's invitations with status (nil for any).
func (Store) CountInvitations(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, status *InvitationStatus, now time.Time) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `
		SELECT count(*) FROM invitations i WHERE i.organization_id = $2 AND `+statusIs, now, org, status)
	return n, err
}

// viewerEmail is the verified email of the user $2, NULL (matching no
// invitation) while it is unverified: the viewer's invitations in the same
// statement as the user's lookup.
const viewerEmail = `(SELECT u.email FROM users u WHERE u.id = $2 AND u.email_verified_at IS NOT NULL)`

// PendingInvitationsFor returns up to limit of the pending, unexpired
// invitations addressed to user's verified email after cur, in
// invitationOrder; none while the email is unverified.
func (Store) PendingInvitationsFor(ctx context.Context, q sqlx.QueryerContext, user uuid.UUID, cur *page.Key[time.Time], limit int, now time.Time) ([]*Invitation, error) {
	var out []*Invitation
	after, args := page.After(invitationOrder, cur, []any{now, user, limit})
	err := sqlx.SelectContext(ctx, q, &out, `
		SELECT `+invitationCols+` FROM invitations i
		WHERE i.email = `+viewerEmail+` AND i.status = 'PENDING' AND i.expires_at > $1`+after+`
		ORDER BY `+invitationOrder.By()+` LIMIT $3`, args...)
	return out, err
}

// CountPendingInvitationsFor counts the pending, unexpired invitations
// addressed to user's verified email.
func (Store) CountPendingInvitationsFor(ctx context.Context, q sqlx.QueryerContext, user uuid.UUID, now time.Time) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `
		SELECT count(*) FROM invitations i WHERE i.email = `+viewerEmail+` AND i.status = 'PENDING' AND i.expires_at > $1`, now, user)
	return n, err
}

// Limits reads orgs' limits and their use at now, by organization (none for
// an organization that does not exist).
func (Store) Limits(ctx context.Context, q sqlx.QueryerContext, orgs []uuid.UUID, now time.Time) (map[uuid.UUID]*OrganizationLimits, error) {
	rows, err := q.QueryxContext(ctx, `
		SELECT l.organization_id, l.seats, organization_seats(l.organization_id, $2, NULL),
			l.customers, coalesce(c.used, 0), l.products, coalesce(p.used, 0),
			l.orders_per_day, CASE WHEN d.period = ($2 AT TIME ZONE o.time_zone)::date THEN d.used ELSE 0 END,
			l.notes_per_customer
		FROM organization_limits l
		JOIN organizations o ON o.id = l.organization_id
		LEFT JOIN organization_usage c ON c.organization_id = l.organization_id AND c.quota = 'customers'
		LEFT JOIN organization_usage p ON p.organization_id = l.organization_id AND p.quota = 'products'
		LEFT JOIN organization_usage d ON d.organization_id = l.organization_id AND d.quota = 'ordersPerDay'
		WHERE l.organization_id = ANY($1)`, pq.Array(orgs), now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[uuid.UUID]*OrganizationLimits, len(orgs))
	for rows.Next() {
		var (
			id uuid.UUID
			l  OrganizationLimits
		)
		if err := rows.Scan(&id, &l.Seats.Max, &l.Seats.Used, &l.Customers.Max, &l.Customers.Used, &l.Products.Max, &l.Products.Used,
			&l.OrdersPerDay.Max, &l.OrdersPerDay.Used, &l.NotesPerCustomer); err != nil {
			return nil, err
		}
		out[id] = &l
	}
	return out, rows.Err()
}

// SetLimits sets org's limits that c gives (ok false when org has none).
func (Store) SetLimits(ctx context.Context, q sqlx.ExecerContext, org uuid.UUID, c LimitsChange, now time.Time) (bool, error) {
	res, err := q.ExecContext(ctx, `
		UPDATE organization_limits SET seats = coalesce($2, seats), customers = coalesce($3, customers),
			notes_per_customer = coalesce($4, notes_per_customer), products = coalesce($5, products),
			orders_per_day = coalesce($6, orders_per_day), updated_at = $7
		WHERE organization_id = $1`, org, c.Seats, c.Customers, c.NotesPerCustomer, c.Products, c.OrdersPerDay, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
