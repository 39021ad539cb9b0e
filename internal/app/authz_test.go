package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/graph"
	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/audit"
)

// The actors of the authorization matrix.
const (
	authzAnon       = "anonymous"
	authzUnverified = "unverified"
	authzOutsider   = "outsider" // verified, owns another organization
	authzMember     = "MEMBER"
	authzAdmin      = "ADMIN"
	authzOwner      = "OWNER"
	authzOK         = "OK"
)

var authzActors = []string{authzAnon, authzUnverified, authzOutsider, authzMember, authzAdmin, authzOwner}

// authzAccountOps are the root fields of the account era: not covered by the
// tenancy matrix (internal/account/account_test.go covers them).
var authzAccountOps = map[string]bool{
	"Query.me": true, "Mutation.register": true, "Mutation.login": true, "Mutation.refreshToken": true,
	"Mutation.logout": true, "Mutation.logoutAll": true, "Mutation.verifyEmail": true,
	"Mutation.resendVerificationEmail": true, "Mutation.requestPasswordReset": true,
	"Mutation.resetPassword": true, "Mutation.changePassword": true,
}

// authzScope names the rows a digest covers: the organizations (plus any
// organization a listed user belongs to, plus any whose name starts with
// nameTag) and the listed users, and in every other table the rows that point
// at them or are addressed to the listed emails (see authzDigestTables).
type authzScope struct {
	orgs    []uuid.UUID
	users   []uuid.UUID
	emails  []string
	nameTag string
}

// authzAsync lists, per table, the columns that change on their own, whatever
// a request does or is refused: the digest leaves them out (and only them).
var authzAsync = map[string][]string{
	// The mail worker delivers queued messages in the background: it sets
	// their delivery state and redacts a sent or failed message's body
	// (internal/platform/mail, worker.go). A row's id, recipient, subject and
	// creation time stay in the digest: a refused call queues no mail.
	"mail_outbox": {"status", "attempts", "next_attempt_at", "last_error", "sent_at", "body"},
}

// authzDerived are the tables that background work fills from others on its
// own, whatever a request does: the audit sealer chains committed events
// (audit_unsealed is its queue, audit_chain its seals; internal/audit,
// chain.go). The digest leaves them out; the events they derive from,
// audit_events, are in it.
var authzDerived = map[string]bool{"audit_chain": true, "audit_unsealed": true}

// authzTable is one table of the public schema as the digest sees it: the
// columns it digests, and how a scope picks its rows.
type authzTable struct {
	name      string
	columns   []string // digested, in catalog order (authzAsync left out)
	orgColumn bool     // has organization_id: the scoped organizations' rows
	userCols  []string // single-column foreign keys to users(id): the scoped users' rows
	emailCols []string // text columns named email or recipient: rows addressed to the scoped emails
}

// authzDigestTables reads every table of the public schema from PostgreSQL's
// catalog (through q, so that a transaction sees its own tables), so that a
// new area's tables are digested without editing this test. A table's rows in
// scope are organizations' and users' by id, and elsewhere those with
// organization_id in the scoped organizations, with a user column naming a
// scoped user, or an email column naming a scoped email. A table with none of
// these columns (today only goose's migration bookkeeping, goose_db_version)
// is digested whole: a global table that requests write would then show other
// tests' writes, and needs a scoping column.
func authzDigestTables(q sqlx.QueryerContext) ([]authzTable, error) {
	var cols []struct {
		Table  string `db:"table_name"`
		Column string `db:"column_name"`
		Text   bool   `db:"is_text"`
		User   bool   `db:"user_ref"`
	}
	err := sqlx.SelectContext(context.Background(), q, &cols, `
		SELECT c.relname AS table_name, a.attname AS column_name,
			a.atttypid IN ('text'::regtype, 'varchar'::regtype) AS is_text,
			EXISTS (SELECT 1 FROM pg_constraint k
				WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid = 'users'::regclass
				  AND k.conkey = ARRAY[a.attnum] AND k.confkey = ARRAY[(SELECT attnum FROM pg_attribute
				      WHERE attrelid = 'users'::regclass AND attname = 'id')]) AS user_ref
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY c.relname, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("read the tables from the catalog: %w", err)
	}
	var out []authzTable
	for _, c := range cols {
		if authzDerived[c.Table] {
			continue
		}
		if len(out) == 0 || out[len(out)-1].name != c.Table {
			out = append(out, authzTable{name: c.Table})
		}
		tb := &out[len(out)-1]
		if slices.Contains(authzAsync[c.Table], c.Column) {
			continue
		}
		tb.columns = append(tb.columns, c.Column)
		switch {
		case c.Column == "organization_id":
			tb.orgColumn = true
		case c.User:
			tb.userCols = append(tb.userCols, c.Column)
		case c.Text && (c.Column == "email" || c.Column == "recipient"):
			tb.emailCols = append(tb.emailCols, c.Column)
		}
	}
	return out, nil
}

// authzDigestQuery is the digest over tables: count + md5 of each table's
// scoped rows (their digested columns), tables in name order. Its parameters
// are the scope's organizations ($1), users ($2), lower-case emails ($3) and
// name tag ($4, NULL for none).
func authzDigestQuery(tables []authzTable) string {
	var b strings.Builder
	b.WriteString(`WITH orgs AS (
			SELECT id FROM organizations WHERE id = ANY($1::uuid[]) OR starts_with(name, $4::text)
			UNION SELECT organization_id FROM organization_members WHERE user_id = ANY($2::uuid[]))
		SELECT concat_ws(' | '`)
	for _, tb := range tables {
		var row []string
		for _, c := range tb.columns {
			row = append(row, "x."+pq.QuoteIdentifier(c))
		}
		var where []string
		switch tb.name {
		case "organizations":
			where = append(where, "x.id IN (SELECT id FROM orgs)")
		case "users":
			where = append(where, "x.id = ANY($2::uuid[])")
		}
		if tb.orgColumn {
			where = append(where, "x.organization_id IN (SELECT id FROM orgs)")
		}
		for _, c := range tb.userCols {
			where = append(where, "x."+pq.QuoteIdentifier(c)+" = ANY($2::uuid[])")
		}
		for _, c := range tb.emailCols {
			where = append(where, "lower(x."+pq.QuoteIdentifier(c)+") = ANY($3::text[])")
		}
		if len(where) == 0 {
			where = append(where, "true")
		}
		fmt.Fprintf(&b, `,
			(SELECT %s || ':' || count(*) || ':' || coalesce(md5(string_agg(r, ',' ORDER BY r)), '')
				FROM (SELECT ROW(%s)::text AS r FROM %s x WHERE %s) d)`,
			pq.QuoteLiteral(tb.name), strings.Join(row, ", "), pq.QuoteIdentifier(tb.name), strings.Join(where, " OR "))
	}
	b.WriteString(")")
	return b.String()
}

// authzDigestSQL is authzDigestQuery over the schema, read once: migrations
// run before the tests, and no test of this package changes the schema outside
// a transaction it rolls back.
var authzDigestSQL = sync.OnceValues(func() (string, error) {
	tables, err := authzDigestTables(srv.DB)
	if err != nil {
		return "", err
	}
	return authzDigestQuery(tables), nil
})

// authzDigest is count + md5 of the scoped rows of every table (see
// authzDigestTables): equal digests mean nothing changed there.
func authzDigest(t *testing.T, s authzScope) string {
	t.Helper()
	query, err := authzDigestSQL()
	if err != nil {
		t.Fatal(err)
	}
	return authzDigestOn(t, srv.DB, query, s)
}

// authzDigestOn runs a digest query on q for scope s.
func authzDigestOn(t testing.TB, q sqlx.QueryerContext, query string, s authzScope) string {
	t.Helper()
	orgs := make([]string, len(s.orgs))
	for i, o := range s.orgs {
		orgs[i] = o.String()
	}
	users := make([]string, len(s.users))
	for i, u := range s.users {
		users[i] = u.String()
	}
	emails := make([]string, len(s.emails))
	for i, e := range s.emails {
		emails[i] = strings.ToLower(e)
	}
	var tag *string // NULL matches no name
	if s.nameTag != "" {
		tag = &s.nameTag
	}
	var out string
	if err := sqlx.GetContext(context.Background(), q, &out, query, pq.Array(orgs), pq.Array(users), pq.Array(emails), tag); err != nil {
		t.Fatal(err)
	}
	return out
}

// authzFixture is one organization O with an OWNER, an ADMIN, a MEMBER (the
// actors) and a second MEMBER (target, the object of member operations), a
// verified outsider who owns another organization, an unverified user, and
// three pending invitations of O (MEMBER role, by the owner): to a fresh
// address (invitee), to the outsider and to the unverified user; and, inserted
// directly (fixtures, not audited), two customers of O (one archived) and two
// notes on the first, one by the MEMBER and one by the target.
type authzFixture struct {
	tag                                                string
	owner, admin, member, target, outsider, unverified *Session
	org, outsiderOrg                                   uuid.UUID
	pendingInv                                         uuid.UUID // O's invitation to inviteeEmail
	inviteeEmail, inviteeToken                         string
	outsiderToken, unverifiedToken                     string // O's invitations to their own emails
	freshEmail                                         string // the address inviteMember rows invite
	customer, archivedCustomer                         uuid.UUID
	memberNote, targetNote                             uuid.UUID // notes on customer by member and by target
	product, archivedProduct                           uuid.UUID // the product has 8 in stock
	pendingOrder, paidOrder                            uuid.UUID // numbers 1 and 2, one unit of product each
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	f := &authzFixture{tag: "authz " + uuid.NewString()[:8]}
	f.owner = srv.RegisterVerified(t, "authz-owner")
	f.org = srv.CreateOrg(t, f.owner, f.tag+" org")
	f.admin = srv.AddMember(t, f.owner, f.org, "ADMIN", "authz-admin")
	f.member = srv.AddMember(t, f.owner, f.org, "MEMBER", "authz-member")
	f.target = srv.AddMember(t, f.owner, f.org, "MEMBER", "authz-target")
	f.outsider = srv.RegisterVerified(t, "authz-outsider")
	f.outsiderOrg = srv.CreateOrg(t, f.outsider, f.tag+" outsider org")
	f.unverified = srv.Register(t, "authz-unverified")
	f.inviteeEmail = UniqueEmail("authz-invitee")
	f.freshEmail = UniqueEmail("authz-fresh")
	f.pendingInv, f.inviteeToken = srv.Invite(t, f.owner, f.org, f.inviteeEmail, "MEMBER")
	_, f.outsiderToken = srv.Invite(t, f.owner, f.org, f.outsider.Email, "MEMBER")
	_, f.unverifiedToken = srv.Invite(t, f.owner, f.org, f.unverified.Email, "MEMBER")
	f.customer, f.archivedCustomer, f.memberNote, f.targetNote = uuid.New(), uuid.New(), uuid.New(), uuid.New()
	if _, err := srv.DB.Exec(`
		WITH c AS (
			INSERT INTO customers (organization_id, id, name, created_by, created_at, updated_at, archived_at)
			VALUES ($1, $2, 'Authz customer', $4, now(), now(), NULL), ($1, $3, 'Authz archived', $4, now(), now(), now()))
		INSERT INTO customer_notes (organization_id, id, customer_id, author_id, body, created_at, updated_at)
		VALUES ($1, $5, $2, $6, 'by the member', now(), now()), ($1, $7, $2, $8, 'by the target', now(), now())`,
		f.org, f.customer, f.archivedCustomer, f.owner.UserID, f.memberNote, f.member.UserID, f.targetNote, f.target.UserID); err != nil {
		t.Fatal(err)
	}
	f.product, f.archivedProduct = uuid.New(), uuid.New()
	if _, err := srv.DB.Exec(`
		WITH p AS (
			INSERT INTO products (organization_id, id, sku, name, price, created_by, created_at, updated_at, archived_at)
			VALUES ($1, $2, 'AUTHZ-1', 'Authz product', 1250, $4, now(), now(), NULL),
			       ($1, $3, 'AUTHZ-2', 'Authz archived', 990, $4, now(), now(), now()) RETURNING id)
		INSERT INTO inventory_movements (organization_id, product_id, delta, reason, actor_id, created_at)
		SELECT $1, $2, 10, 'ADJUSTMENT', $4, now() FROM p WHERE p.id = $2`,
		f.org, f.product, f.archivedProduct, f.owner.UserID); err != nil {
		t.Fatal(err)
	}
	// Orders are written PENDING (the database's rule), then one is paid.
	f.pendingOrder, f.paidOrder = uuid.New(), uuid.New()
	if _, err := srv.DB.Exec(`
		WITH n AS (INSERT INTO order_numbers (organization_id, last) VALUES ($1, 2)),
		o AS (
			INSERT INTO orders (organization_id, id, number, customer_id, status, currency, subtotal, total, line_count, created_by, created_at)
			VALUES ($1, $2, 1, $4, 'PENDING', 'USD', 1250, 1250, 1, $5, now()),
			       ($1, $3, 2, $4, 'PENDING', 'USD', 1250, 1250, 1, $5, now()) RETURNING id)
		INSERT INTO order_lines (organization_id, order_id, line_no, product_id, sku, name, unit_price, quantity, line_total, track_inventory)
		SELECT $1, o.id, 1, $6, 'AUTHZ-1', 'Authz product', 1250, 1, 1250, true FROM o`,
		f.org, f.pendingOrder, f.paidOrder, f.customer, f.member.UserID, f.product); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.DB.Exec(`UPDATE orders SET status = 'PAID', paid_at = now() WHERE organization_id = $1 AND id = $2`, f.org, f.paidOrder); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *authzFixture) session(actor string) *Session {
	switch actor {
	case authzUnverified:
		return f.unverified
	case authzOutsider:
		return f.outsider
	case authzMember:
		return f.member
	case authzAdmin:
		return f.admin
	case authzOwner:
		return f.owner
	}
	return nil
}

func (f *authzFixture) token(actor string) string {
	if s := f.session(actor); s != nil {
		return s.AccessToken
	}
	return ""
}

func (f *authzFixture) scope() authzScope {
	s := authzScope{orgs: []uuid.UUID{f.org, f.outsiderOrg}, nameTag: f.tag,
		emails: []string{f.inviteeEmail, f.freshEmail}}
	for _, u := range []*Session{f.owner, f.admin, f.member, f.target, f.outsider, f.unverified} {
		s.users = append(s.users, u.UserID)
		s.emails = append(s.emails, u.Email)
	}
	return s
}

// respondToken is the invitation token an actor presents to acceptInvitation
// and declineInvitation:
//   - anonymous: the invitee's (valid) token; the directive refuses first.
//   - unverified, outsider: O's invitation to their own email (the case that
//     makes sense: they are not members of O).
//   - MEMBER, ADMIN, OWNER: they already belong to O, so O cannot invite them
//     (inviteMember answers CONFLICT); they present the token of O's
//     invitation to someone else (a forwarded or leaked link). A role in the
//     inviting organization grants nothing over an invitation addressed to
//     another email: FORBIDDEN, and the invitation stays pending.
func (f *authzFixture) respondToken(actor string) string {
	switch actor {
	case authzUnverified:
		return f.unverifiedToken
	case authzOutsider:
		return f.outsiderToken
	}
	return f.inviteeToken
}

// authzOp is one operation of the tenancy API and its expected result per actor.
type authzOp struct {
	op    string // "Query.x", "Mutation.x", "Subscription.x" (over a websocket) or "Organization.x" (reached via organization(orgId))
	query string
	vars  func(f *authzFixture, actor string) map[string]any
	want  map[string]string // actor -> authzOK or extensions.code
	// check runs on OK rows (optional): what the actor sees.
	check func(t *testing.T, f *authzFixture, actor string, r Response)
}

// dataPath is where the operation's result sits in data.
func (o authzOp) dataPath() []string {
	typ, field, _ := strings.Cut(o.op, ".")
	if typ == "Organization" {
		return []string{"organization", field}
	}
	return []string{field}
}

func (o authzOp) isMutation() bool { return strings.HasPrefix(o.op, "Mutation.") }

// Expected results by gate.
var (
	authzWantAdmin = map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
		authzMember: "FORBIDDEN", authzAdmin: authzOK, authzOwner: authzOK}
	authzWantMember = map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
		authzMember: authzOK, authzAdmin: authzOK, authzOwner: authzOK}
	authzWantVerified = map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "FORBIDDEN", authzOutsider: authzOK,
		authzMember: authzOK, authzAdmin: authzOK, authzOwner: authzOK}
)

func authzOrgVars(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org} }

func authzProductVars(f *authzFixture, _ string) map[string]any {
	return map[string]any{"o": f.org, "id": f.product}
}

func authzPendingOrderVars(f *authzFixture, _ string) map[string]any {
	return map[string]any{"o": f.org, "id": f.pendingOrder}
}

func authzPaidOrderVars(f *authzFixture, _ string) map[string]any {
	return map[string]any{"o": f.org, "id": f.paidOrder}
}

func authzCustomerVars(f *authzFixture, _ string) map[string]any {
	return map[string]any{"o": f.org, "id": f.customer}
}

func authzOps() []authzOp {
	return []authzOp{
		{op: "Query.organizations", query: `{ organizations(first: 100) { totalCount edges { node { id } } } }`,
			vars: func(*authzFixture, string) map[string]any { return nil },
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: authzOK, authzOutsider: authzOK,
				authzMember: authzOK, authzAdmin: authzOK, authzOwner: authzOK},
			// Lists exactly the viewer's organizations: never O for a non-member.
			check: func(t *testing.T, f *authzFixture, actor string, r Response) {
				var out struct {
					Organizations struct {
						TotalCount int
						Edges      []struct{ Node struct{ ID uuid.UUID } }
					}
				}
				r.Decode(t, &out)
				var got []uuid.UUID
				for _, e := range out.Organizations.Edges {
					got = append(got, e.Node.ID)
				}
				var want []uuid.UUID
				switch actor {
				case authzOutsider:
					want = []uuid.UUID{f.outsiderOrg}
				case authzMember, authzAdmin, authzOwner:
					want = []uuid.UUID{f.org}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) || out.Organizations.TotalCount != len(want) {
					t.Errorf("organizations = %v (total %d), want %v", got, out.Organizations.TotalCount, want)
				}
			}},
		{op: "Query.organization", query: `query($o: ID!) { organization(orgId: $o) { id viewerRole } }`,
			vars: authzOrgVars, want: authzWantMember,
			check: func(t *testing.T, f *authzFixture, actor string, r Response) {
				var out struct {
					Organization struct{ ID, ViewerRole string }
				}
				r.Decode(t, &out)
				if out.Organization.ID != f.org.String() || out.Organization.ViewerRole != actor {
					t.Errorf("organization = %+v, want id %s role %s", out.Organization, f.org, actor)
				}
			}},
		{op: "Query.myInvitations", query: `{ myInvitations { totalCount edges { node { id email organizationName } } } }`,
			vars: func(*authzFixture, string) map[string]any { return nil }, want: authzWantVerified,
			// Only the outsider has a pending invitation (O's, to its own email).
			check: func(t *testing.T, f *authzFixture, actor string, r Response) {
				var out struct {
					MyInvitations struct {
						TotalCount int
						Edges      []struct {
							Node struct{ Email, OrganizationName string }
						}
					}
				}
				r.Decode(t, &out)
				want := 0
				if actor == authzOutsider {
					want = 1
				}
				if len(out.MyInvitations.Edges) != want || out.MyInvitations.TotalCount != want {
					t.Fatalf("myInvitations = %+v, want %d", out.MyInvitations, want)
				}
				for _, e := range out.MyInvitations.Edges {
					if e.Node.Email != f.outsider.Email || e.Node.OrganizationName != f.tag+" org" {
						t.Errorf("myInvitations = %+v", out.MyInvitations)
					}
				}
			}},
		// Organization.members carries no directive: the organization(orgId) gate covers it.
		{op: "Organization.members", query: `query($o: ID!) { organization(orgId: $o) { members(first: 100) { totalCount } } }`,
			vars: authzOrgVars, want: authzWantMember,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct {
					Organization struct{ Members struct{ TotalCount int } }
				}
				r.Decode(t, &out)
				if out.Organization.Members.TotalCount != 4 {
					t.Errorf("members.totalCount = %d, want 4", out.Organization.Members.TotalCount)
				}
			}},
		{op: "Organization.invitations", query: `query($o: ID!) { organization(orgId: $o) { invitations(first: 100) { totalCount } } }`,
			vars: authzOrgVars, want: authzWantAdmin,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct {
					Organization struct{ Invitations struct{ TotalCount int } }
				}
				r.Decode(t, &out)
				if out.Organization.Invitations.TotalCount != 6 { // 3 accepted + 3 pending
					t.Errorf("invitations.totalCount = %d, want 6", out.Organization.Invitations.TotalCount)
				}
			}},
		{op: "Organization.limits", query: `query($o: ID!) { organization(orgId: $o) { limits { seats { used max } customers { max } notesPerCustomer } } }`,
			vars: authzOrgVars, want: authzWantAdmin,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct {
					Organization struct {
						Limits struct {
							Seats     struct{ Used, Max int }
							Customers struct{ Max int }
						}
					}
				}
				r.Decode(t, &out)
				if l := out.Organization.Limits; l.Seats.Used != 7 || l.Seats.Max != 250 || l.Customers.Max != 250000 { // 4 members + 3 pending
					t.Errorf("limits = %+v, want 7 of 250 seats and 250,000 customers", l)
				}
			}},
		{op: "Organization.auditLog", query: `query($o: ID!) { organization(orgId: $o) { auditLog(first: 100) { totalCount } } }`,
			vars: authzOrgVars, want: authzWantAdmin,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct {
					Organization struct{ AuditLog struct{ TotalCount int } }
				}
				r.Decode(t, &out)
				if out.Organization.AuditLog.TotalCount != 10 { // created + 6 invited + 3 accepted
					t.Errorf("auditLog.totalCount = %d, want 10", out.Organization.AuditLog.TotalCount)
				}
			}},
		{op: "Mutation.createOrganization", query: `mutation($in: CreateOrganizationInput!) { createOrganization(input: $in) { id viewerRole } }`,
			vars: func(f *authzFixture, actor string) map[string]any {
				return map[string]any{"in": map[string]any{"name": f.tag + " created by " + actor}}
			},
			want: authzWantVerified,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ CreateOrganization struct{ ViewerRole string } }
				r.Decode(t, &out)
				if out.CreateOrganization.ViewerRole != "OWNER" {
					t.Errorf("creator's role = %q, want OWNER", out.CreateOrganization.ViewerRole)
				}
			}},
		{op: "Mutation.updateOrganization", query: `mutation($o: ID!, $in: UpdateOrganizationInput!) { updateOrganization(orgId: $o, input: $in) { id name } }`,
			vars: func(f *authzFixture, actor string) map[string]any {
				return map[string]any{"o": f.org, "in": map[string]any{"name": f.tag + " renamed by " + actor}}
			},
			want: authzWantAdmin},
		// ADMIN invites at its own rank or below: MEMBER.
		{op: "Mutation.inviteMember", query: `mutation($o: ID!, $e: String!) { inviteMember(orgId: $o, email: $e, role: MEMBER) { id status } }`,
			vars: func(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org, "e": f.freshEmail} },
			want: authzWantAdmin},
		{op: "Mutation.resendInvitation", query: `mutation($o: ID!, $i: ID!) { resendInvitation(orgId: $o, invitationId: $i) { id status } }`,
			vars: func(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org, "i": f.pendingInv} },
			want: authzWantAdmin},
		{op: "Mutation.revokeInvitation", query: `mutation($o: ID!, $i: ID!) { revokeInvitation(orgId: $o, invitationId: $i) { id status } }`,
			vars: func(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org, "i": f.pendingInv} },
			want: authzWantAdmin,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ RevokeInvitation struct{ Status string } }
				r.Decode(t, &out)
				if out.RevokeInvitation.Status != "REVOKED" {
					t.Errorf("status = %q, want REVOKED", out.RevokeInvitation.Status)
				}
			}},
		// Tokens per actor: see respondToken. The unverified user's own
		// invitation is refused by @verified; the outsider accepts its own.
		{op: "Mutation.acceptInvitation", query: `mutation($t: String!) { acceptInvitation(token: $t) { role user { id } } }`,
			vars: func(f *authzFixture, actor string) map[string]any { return map[string]any{"t": f.respondToken(actor)} },
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "FORBIDDEN", authzOutsider: authzOK,
				authzMember: "FORBIDDEN", authzAdmin: "FORBIDDEN", authzOwner: "FORBIDDEN"},
			check: func(t *testing.T, f *authzFixture, _ string, r Response) {
				var out struct {
					AcceptInvitation struct {
						Role string
						User struct{ ID uuid.UUID }
					}
				}
				r.Decode(t, &out)
				if out.AcceptInvitation.Role != "MEMBER" || out.AcceptInvitation.User.ID != f.outsider.UserID {
					t.Errorf("accepted = %+v", out.AcceptInvitation)
				}
			}},
		// declineInvitation is @auth only (schema): the emailed token proves the
		// mailbox, so the unverified user may decline its own invitation.
		{op: "Mutation.declineInvitation", query: `mutation($t: String!) { declineInvitation(token: $t) }`,
			vars: func(f *authzFixture, actor string) map[string]any { return map[string]any{"t": f.respondToken(actor)} },
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: authzOK, authzOutsider: authzOK,
				authzMember: "FORBIDDEN", authzAdmin: "FORBIDDEN", authzOwner: "FORBIDDEN"}},
		// Target: a MEMBER (not the actor); ADMIN may grant up to ADMIN.
		{op: "Mutation.changeMemberRole", query: `mutation($o: ID!, $u: ID!) { changeMemberRole(orgId: $o, userId: $u, role: ADMIN) { role } }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "u": f.target.UserID}
			},
			want: authzWantAdmin,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ ChangeMemberRole struct{ Role string } }
				r.Decode(t, &out)
				if out.ChangeMemberRole.Role != "ADMIN" {
					t.Errorf("role = %q, want ADMIN", out.ChangeMemberRole.Role)
				}
			}},
		{op: "Mutation.removeMember", query: `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "u": f.target.UserID}
			},
			want: authzWantAdmin},
		// The OWNER cannot leave before transferring ownership: CONFLICT (a rule, not a gate).
		{op: "Mutation.leaveOrganization", query: `mutation($o: ID!) { leaveOrganization(orgId: $o) }`,
			vars: authzOrgVars,
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
				authzMember: authzOK, authzAdmin: authzOK, authzOwner: "CONFLICT"}},
		// New owner: the verified MEMBER target.
		{op: "Mutation.transferOwnership", query: `mutation($o: ID!, $u: ID!) { transferOwnership(orgId: $o, newOwnerId: $u) { id owner { id } } }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "u": f.target.UserID}
			},
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
				authzMember: "FORBIDDEN", authzAdmin: "FORBIDDEN", authzOwner: authzOK},
			check: func(t *testing.T, f *authzFixture, _ string, r Response) {
				var out struct {
					TransferOwnership struct{ Owner struct{ ID uuid.UUID } }
				}
				r.Decode(t, &out)
				if out.TransferOwnership.Owner.ID != f.target.UserID {
					t.Errorf("owner = %s, want %s", out.TransferOwnership.Owner.ID, f.target.UserID)
				}
			}},
		// Customers (docs/api.md, "Customers"): every member reads and writes customers
		// and notes; archive, restore and import need ADMIN.
		{op: "Query.customers", query: `query($o: ID!) { customers(orgId: $o, includeArchived: true) { totalCount edges { node { id notes { totalCount } } } } }`,
			vars: authzOrgVars, want: authzWantMember,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ Customers struct{ TotalCount int } }
				r.Decode(t, &out)
				if out.Customers.TotalCount != 2 {
					t.Errorf("customers.totalCount = %d, want 2", out.Customers.TotalCount)
				}
			}},
		{op: "Query.customer", query: `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) { id name notes { totalCount } } }`,
			vars: authzCustomerVars, want: authzWantMember,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct {
					Customer struct {
						Name  string
						Notes struct{ TotalCount int }
					}
				}
				r.Decode(t, &out)
				if out.Customer.Name != "Authz customer" || out.Customer.Notes.TotalCount != 2 {
					t.Errorf("customer = %+v", out.Customer)
				}
			}},
		{op: "Mutation.createCustomer", query: `mutation($o: ID!) { createCustomer(orgId: $o, input: {name: "Created"}) { id createdBy { id } } }`,
			vars: authzOrgVars, want: authzWantMember},
		{op: "Mutation.updateCustomer", query: `mutation($o: ID!, $id: ID!) { updateCustomer(orgId: $o, id: $id, input: {status: ACTIVE}) { status version } }`,
			vars: authzCustomerVars, want: authzWantMember},
		{op: "Mutation.archiveCustomer", query: `mutation($o: ID!, $id: ID!) { archiveCustomer(orgId: $o, id: $id) { archivedAt } }`,
			vars: authzCustomerVars, want: authzWantAdmin},
		{op: "Mutation.restoreCustomer", query: `mutation($o: ID!, $id: ID!) { restoreCustomer(orgId: $o, id: $id) { archivedAt } }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "id": f.archivedCustomer}
			},
			want: authzWantAdmin},
		{op: "Mutation.importCustomers", query: `mutation($o: ID!) { importCustomers(orgId: $o, input: [{name: "Imported"}]) { id } }`,
			vars: authzOrgVars, want: authzWantAdmin},
		{op: "Query.products", query: `query($o: ID!) { products(orgId: $o, includeArchived: true) { totalCount edges { node { sku stock price { amount } } } } }`,
			vars: authzOrgVars, want: authzWantMember,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ Products struct{ TotalCount int } }
				r.Decode(t, &out)
				if out.Products.TotalCount != 2 {
					t.Errorf("products.totalCount = %d, want 2", out.Products.TotalCount)
				}
			}},
		{op: "Query.product", query: `query($o: ID!, $id: ID!) { product(orgId: $o, id: $id) { sku stock movements { totalCount } } }`,
			vars: authzProductVars, want: authzWantMember},
		{op: "Mutation.createProduct", query: `mutation($o: ID!) { createProduct(orgId: $o, input: {sku: "NEW-1", name: "Created", price: "500", initialStock: 3}) { id stock } }`,
			vars: authzOrgVars, want: authzWantAdmin},
		{op: "Mutation.updateProduct", query: `mutation($o: ID!, $id: ID!) { updateProduct(orgId: $o, id: $id, input: {price: "1500"}) { price { amount } version } }`,
			vars: authzProductVars, want: authzWantAdmin},
		{op: "Mutation.archiveProduct", query: `mutation($o: ID!, $id: ID!) { archiveProduct(orgId: $o, id: $id) { archivedAt } }`,
			vars: authzProductVars, want: authzWantAdmin},
		{op: "Mutation.restoreProduct", query: `mutation($o: ID!, $id: ID!) { restoreProduct(orgId: $o, id: $id) { archivedAt } }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "id": f.archivedProduct}
			},
			want: authzWantAdmin},
		{op: "Mutation.adjustStock", query: `mutation($o: ID!, $id: ID!) { adjustStock(orgId: $o, productId: $id, delta: -2, reason: "damaged") { stock } }`,
			vars: authzProductVars, want: authzWantAdmin},
		{op: "Mutation.addCustomerNote", query: `mutation($o: ID!, $id: ID!) { addCustomerNote(orgId: $o, customerId: $id, body: "hello") { id author { id } } }`,
			vars: authzCustomerVars, want: authzWantMember},
		// The MEMBER's own note: editing is its author's only, whatever the role.
		{op: "Mutation.updateCustomerNote", query: `mutation($o: ID!, $id: ID!) { updateCustomerNote(orgId: $o, id: $id, body: "edited") { body } }`,
			vars: func(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org, "id": f.memberNote} },
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
				authzMember: authzOK, authzAdmin: "FORBIDDEN", authzOwner: "FORBIDDEN"}},
		// The target's note: the MEMBER may not delete another member's note; ADMIN and OWNER may.
		{op: "Mutation.deleteCustomerNote", query: `mutation($o: ID!, $id: ID!) { deleteCustomerNote(orgId: $o, id: $id) }`,
			vars: func(f *authzFixture, _ string) map[string]any { return map[string]any{"o": f.org, "id": f.targetNote} },
			want: authzWantAdmin},
		{op: "Query.orders", query: `query($o: ID!) { orders(orgId: $o) { totalCount edges { node { number status customer { id } lines { product { sku } } } } } }`,
			vars: authzOrgVars, want: authzWantMember,
			check: func(t *testing.T, _ *authzFixture, _ string, r Response) {
				var out struct{ Orders struct{ TotalCount int } }
				r.Decode(t, &out)
				if out.Orders.TotalCount != 2 {
					t.Errorf("orders.totalCount = %d, want 2", out.Orders.TotalCount)
				}
			}},
		{op: "Query.order", query: `query($o: ID!, $id: ID!) { order(orgId: $o, id: $id) { number total { amount } } }`,
			vars: authzPendingOrderVars, want: authzWantMember},
		{op: "Query.orderByNumber", query: `query($o: ID!) { orderByNumber(orgId: $o, number: 2) { id status } }`,
			vars: authzOrgVars, want: authzWantMember},
		{op: "Organization.salesSummary", query: `query($o: ID!) { organization(orgId: $o) { salesSummary(from: "2000-01-01T00:00:00Z", to: "2000-12-31T00:00:00Z") { orders revenue { amount } } } }`,
			vars: authzOrgVars, want: authzWantMember},
		{op: "Mutation.createOrder", query: `mutation($o: ID!, $c: ID!, $p: ID!) { createOrder(orgId: $o, input: {customerId: $c, lines: [{productId: $p, quantity: 2}]}) { number total { amount } } }`,
			vars: func(f *authzFixture, _ string) map[string]any {
				return map[string]any{"o": f.org, "c": f.customer, "p": f.product}
			},
			want: authzWantMember},
		{op: "Mutation.markOrderPaid", query: `mutation($o: ID!, $id: ID!) { markOrderPaid(orgId: $o, id: $id) { status paidAt } }`,
			vars: authzPendingOrderVars, want: authzWantAdmin},
		{op: "Mutation.fulfillOrder", query: `mutation($o: ID!, $id: ID!) { fulfillOrder(orgId: $o, id: $id) { status fulfilledAt } }`,
			vars: authzPaidOrderVars, want: authzWantAdmin},
		{op: "Mutation.cancelOrder", query: `mutation($o: ID!, $id: ID!) { cancelOrder(orgId: $o, id: $id) { status cancelledAt } }`,
			vars: authzPendingOrderVars, want: authzWantAdmin},
		{op: "Mutation.refundOrder", query: `mutation($o: ID!, $id: ID!) { refundOrder(orgId: $o, id: $id, restock: true) { status restocked } }`,
			vars: authzPaidOrderVars, want: authzWantAdmin},
		// The OWNER passes the gate and meets the rule: O has orders, so its
		// currency no longer changes (CONFLICT, nothing changed). The currency
		// tests show the change itself.
		{op: "Mutation.setOrganizationCurrency", query: `mutation($o: ID!) { setOrganizationCurrency(orgId: $o, currency: "EUR") { currency } }`,
			vars: authzOrgVars,
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
				authzMember: "FORBIDDEN", authzAdmin: "FORBIDDEN", authzOwner: "CONFLICT"}},
		{op: "Organization.auditLogIntegrity", query: `query($o: ID!) { organization(orgId: $o) { auditLogIntegrity { checked broken firstBroken { id } } } }`,
			vars: authzOrgVars,
			want: map[string]string{authzAnon: "UNAUTHENTICATED", authzUnverified: "NOT_FOUND", authzOutsider: "NOT_FOUND",
				authzMember: "FORBIDDEN", authzAdmin: "FORBIDDEN", authzOwner: authzOK}},
		{op: "Organization.eventsCursor", query: `query($o: ID!) { organization(orgId: $o) { eventsCursor } }`,
			vars: authzOrgVars, want: authzWantMember},
		// Replayed from the organization's first event: an OK row gets one at once.
		{op: "Subscription.organizationEvents", query: `subscription($o: ID!, $a: String) { organizationEvents(orgId: $o, after: $a) { cursor action } }`,
			vars: func(f *authzFixture, actor string) map[string]any {
				return map[string]any{"o": f.org, "a": audit.EventCursor(0)}
			}, want: authzWantMember},
		{op: "Mutation.setOrganizationTimeZone", query: `mutation($o: ID!) { setOrganizationTimeZone(orgId: $o, timeZone: "Europe/Paris") { timeZone } }`,
			vars: authzOrgVars, want: authzWantAdmin},
	}
}

// authzSchemaOps lists the operations the matrix must cover (Query and
// Mutation fields outside the account set, Organization fields with a
// directive) and every Query, Mutation and Organization field of the schema.
func authzSchemaOps(t *testing.T) (required, all map[string]bool) {
	t.Helper()
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	required, all = map[string]bool{}, map[string]bool{}
	for _, def := range []string{"Query", "Mutation", "Subscription", "Organization"} {
		d := schema.Types[def]
		if d == nil {
			t.Fatalf("schema has no type %s", def)
		}
		for _, f := range d.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			name := def + "." + f.Name
			all[name] = true
			switch {
			case def == "Organization" && len(f.Directives) > 0:
				required[name] = true
			case def != "Organization" && !authzAccountOps[name]:
				required[name] = true
			}
		}
	}
	for name := range authzAccountOps {
		if !all[name] {
			t.Errorf("account operation %s is not in the schema: update authzAccountOps", name)
		}
	}
	return required, all
}

// authzDataAt follows path in data and returns the raw value found ("null" when absent).
func authzDataAt(data json.RawMessage, path []string) string {
	cur := data
	for _, p := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil || m == nil {
			return "null"
		}
		v, ok := m[p]
		if !ok {
			return "null"
		}
		cur = v
	}
	if len(cur) == 0 {
		return "null"
	}
	return string(cur)
}

// TestAuthorizationMatrix runs every tenancy operation as every actor (an
// accepted mutation against a fresh fixture of its own; the rows that must
// change nothing one after the other on the operation's shared fixture) and
// checks the result code, that refused rows (and reads) change nothing, and
// that accepted mutations do change the fixture's rows.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	ops := authzOps()
	required, all := authzSchemaOps(t)
	rows := map[string]bool{}
	for _, o := range ops {
		if rows[o.op] {
			t.Errorf("two rows for %s", o.op)
		}
		rows[o.op] = true
		if !all[o.op] {
			t.Errorf("the matrix has a row for %s, which is not in the schema", o.op)
		}
		if len(o.want) != len(authzActors) {
			t.Errorf("%s: %d expectations, want one per actor (%d)", o.op, len(o.want), len(authzActors))
		}
		for _, a := range authzActors {
			if _, ok := o.want[a]; !ok {
				t.Errorf("%s: no expectation for actor %s", o.op, a)
			}
		}
	}
	var missing []string
	for op := range required {
		if !rows[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations without a row in the authorization matrix: %v", missing)
	}
	if len(required) < 16 {
		t.Errorf("only %d tenancy operations found in the schema: the schema walk is broken", len(required))
	}

	var executed atomic.Int64
	var mu sync.Mutex
	table := map[string]map[string]string{} // op -> actor -> got
	record := func(op, actor, got string) {
		mu.Lock()
		defer mu.Unlock()
		if table[op] == nil {
			table[op] = map[string]string{}
		}
		table[op][actor] = got
	}
	t.Run("rows", func(t *testing.T) {
		for _, o := range ops {
			t.Run(o.op, func(t *testing.T) {
				t.Parallel()
				// A row that must change nothing (a refusal, a read) runs on the
				// operation's shared fixture, one after the other: its digest
				// would show any change it made. An accepted mutation gets a
				// fixture of its own.
				var shared *authzFixture
				for _, actor := range authzActors {
					if o.isMutation() && o.want[actor] == authzOK {
						t.Run(actor, func(t *testing.T) {
							t.Parallel()
							authzRow(t, o, actor, newAuthzFixture(t), &executed, record)
						})
						continue
					}
					if shared == nil {
						shared = newAuthzFixture(t)
					}
					t.Run(actor, func(t *testing.T) { authzRow(t, o, actor, shared, &executed, record) })
				}
			})
		}
	})
	if n, want := executed.Load(), int64(len(ops)*len(authzActors)); n != want || n != 294 {
		t.Errorf("executed %d rows, want %d (49 operations x 6 actors = 294)", n, want)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s", "operation")
	for _, a := range authzActors {
		fmt.Fprintf(&b, " %-16s", a)
	}
	for _, o := range ops {
		fmt.Fprintf(&b, "\n%-28s", o.op)
		for _, a := range authzActors {
			fmt.Fprintf(&b, " %-16s", table[o.op][a])
		}
	}
	t.Logf("results:\n%s", b.String())
}

// authzRow runs operation o as actor on fixture f and checks its row of the
// matrix: the code, that a refusal or a read changed nothing (the digest of
// every table before and after), and that an accepted mutation changed something.
// authzExec runs o as token: over HTTP, or a subscription over a websocket,
// whose first message is its answer (a socket refused for want of a token
// counts as UNAUTHENTICATED).
func authzExec(t *testing.T, o authzOp, token string, vars map[string]any) Response {
	t.Helper()
	if !strings.HasPrefix(o.op, "Subscription.") {
		return srv.Post(t, token, o.query, vars)
	}
	unauthenticated := Response{Errors: []Error{{Message: "no socket", Extensions: map[string]any{"code": "UNAUTHENTICATED"}}}}
	w, err := srv.DialWS(t, token, WSOptions{})
	if closeCode(err) == 4403 {
		return unauthenticated
	}
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer w.Close()
	w.Subscribe(t, "1", o.query, vars)
	m, err := w.Next(5 * time.Second)
	switch {
	case err != nil:
		t.Fatalf("%s: %v", o.op, err)
	case m.Type == "next":
		return m.Response(t)
	case m.Type == "error":
		return Response{Errors: m.Errors(t), Raw: string(m.Payload)}
	}
	t.Fatalf("%s: unexpected %s %s", o.op, m.Type, m.Payload)
	return Response{}
}

func authzRow(t *testing.T, o authzOp, actor string, f *authzFixture, executed *atomic.Int64, record func(op, actor, got string)) {
	scope := f.scope()
	before := authzDigest(t, scope)
	r := authzExec(t, o, f.token(actor), o.vars(f, actor))
	executed.Add(1)
	got := r.Code()
	if got == "" {
		got = authzOK
	}
	record(o.op, actor, got)
	want := o.want[actor]
	if got != want {
		t.Errorf("%s as %s: got %s, want %s: %s", o.op, actor, got, want, r.Raw)
	}
	after := authzDigest(t, scope)
	if want == authzOK {
		if len(r.Errors) > 0 {
			t.Errorf("errors on an OK row: %s", r.Raw)
		}
		if v := authzDataAt(r.Data, o.dataPath()); v == "null" {
			t.Errorf("data.%s is null on an OK row: %s", strings.Join(o.dataPath(), "."), r.Raw)
		}
		if got == authzOK && o.check != nil {
			o.check(t, f, actor, r)
		}
		if o.isMutation() && before == after {
			t.Errorf("%s as %s succeeded but changed no tenancy row", o.op, actor)
		}
	} else if v := authzDataAt(r.Data, o.dataPath()[:1]); v != "null" {
		t.Errorf("data.%s = %s on a refused row", o.dataPath()[0], v)
	}
	if (want != authzOK || !o.isMutation()) && before != after {
		t.Errorf("%s as %s (want %s, got %s) changed tenancy rows:\nbefore %s\nafter  %s", o.op, actor, want, got, before, after)
	}
}

// TestCrossTenantIDsAreNotFound: an ADMIN or the OWNER of org A cannot reach
// org B's members or invitations through A's orgId, nor read B; the answers
// are the same as for ids that do not exist, and neither A nor B changes.
func TestCrossTenantIDsAreNotFound(t *testing.T) {
	t.Parallel()
	ownerA := srv.RegisterVerified(t, "xt-owner-a")
	orgA := srv.CreateOrg(t, ownerA, "xt A "+uuid.NewString()[:8])
	adminA := srv.AddMember(t, ownerA, orgA, "ADMIN", "xt-admin-a")
	srv.AddMember(t, ownerA, orgA, "MEMBER", "xt-member-a")
	ownerB := srv.RegisterVerified(t, "xt-owner-b")
	orgB := srv.CreateOrg(t, ownerB, "xt B "+uuid.NewString()[:8])
	memberB := srv.AddMember(t, ownerB, orgB, "MEMBER", "xt-member-b")
	invB, _ := srv.Invite(t, ownerB, orgB, UniqueEmail("xt-invitee-b"), "MEMBER")

	type xcase struct {
		name, query string
		vars        func(foreign uuid.UUID) map[string]any
		foreign     uuid.UUID
		ownerOnly   bool
	}
	cases := []xcase{
		{"removeMember", `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": orgA, "u": id} }, memberB.UserID, false},
		{"changeMemberRole", `mutation($o: ID!, $u: ID!) { changeMemberRole(orgId: $o, userId: $u, role: MEMBER) { role } }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": orgA, "u": id} }, memberB.UserID, false},
		{"transferOwnership", `mutation($o: ID!, $u: ID!) { transferOwnership(orgId: $o, newOwnerId: $u) { id } }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": orgA, "u": id} }, memberB.UserID, true},
		{"revokeInvitation", `mutation($o: ID!, $i: ID!) { revokeInvitation(orgId: $o, invitationId: $i) { id } }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": orgA, "i": id} }, invB, false},
		{"resendInvitation", `mutation($o: ID!, $i: ID!) { resendInvitation(orgId: $o, invitationId: $i) { id } }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": orgA, "i": id} }, invB, false},
		{"organization(B)", `query($o: ID!) { organization(orgId: $o) { id name } }`,
			func(id uuid.UUID) map[string]any { return map[string]any{"o": id} }, orgB, false},
	}
	scopeA := authzScope{orgs: []uuid.UUID{orgA}}
	scopeB := authzScope{orgs: []uuid.UUID{orgB}}
	ran := 0
	for _, actor := range []struct {
		name string
		s    *Session
	}{{"ADMIN", adminA}, {"OWNER", ownerA}} {
		for _, c := range cases {
			if c.ownerOnly && actor.name != "OWNER" {
				continue
			}
			t.Run(actor.name+"/"+c.name, func(t *testing.T) {
				beforeA, beforeB := authzDigest(t, scopeA), authzDigest(t, scopeB)
				r := srv.Post(t, actor.s.AccessToken, c.query, c.vars(c.foreign))
				ran++
				if r.Code() != "NOT_FOUND" {
					t.Errorf("B's id through A: want NOT_FOUND, got %s", r.Raw)
				}
				rn := srv.Post(t, actor.s.AccessToken, c.query, c.vars(uuid.New()))
				if rn.Code() != "NOT_FOUND" {
					t.Errorf("random id: want NOT_FOUND, got %s", rn.Raw)
				}
				wantLikeNowhere(t, r, rn)
				wantUnchanged(t, "org A", scopeA, beforeA)
				wantUnchanged(t, "org B", scopeB, beforeB)
			})
		}
	}
	if ran != 11 {
		t.Errorf("ran %d cross-tenant cases, want 11", ran)
	}

	// Roles and memberships are read per request, not from the token: the
	// same access token loses access on the very next request.
	t.Run("removed member loses access at once", func(t *testing.T) {
		gone := srv.AddMember(t, ownerA, orgA, "MEMBER", "xt-gone")
		q := `query($o: ID!) { organization(orgId: $o) { id } }`
		MustOK(t, srv.Post(t, gone.AccessToken, q, map[string]any{"o": orgA}))
		MustOK(t, srv.Post(t, ownerA.AccessToken, `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
			map[string]any{"o": orgA, "u": gone.UserID}))
		if r := srv.Post(t, gone.AccessToken, q, map[string]any{"o": orgA}); r.Code() != "NOT_FOUND" {
			t.Errorf("removed member reading the organization: want NOT_FOUND, got %s", r.Raw)
		}
		before := authzDigest(t, scopeA)
		if r := srv.Post(t, gone.AccessToken, `mutation($o: ID!) { leaveOrganization(orgId: $o) }`, map[string]any{"o": orgA}); r.Code() != "NOT_FOUND" {
			t.Errorf("removed member leaving: want NOT_FOUND, got %s", r.Raw)
		}
		var out struct{ Organizations struct{ TotalCount int } }
		MustOK(t, srv.Post(t, gone.AccessToken, `{ organizations { totalCount } }`, nil)).Decode(t, &out)
		if out.Organizations.TotalCount != 0 {
			t.Errorf("removed member still lists %d organizations", out.Organizations.TotalCount)
		}
		wantUnchanged(t, "org A", scopeA, before)
	})
	t.Run("demoted admin is refused at once", func(t *testing.T) {
		demoted := srv.AddMember(t, ownerA, orgA, "ADMIN", "xt-demoted")
		q := `query($o: ID!) { organization(orgId: $o) { viewerRole invitations { totalCount } } }`
		MustOK(t, srv.Post(t, demoted.AccessToken, q, map[string]any{"o": orgA}))
		var ch struct{ ChangeMemberRole struct{ Role string } }
		MustOK(t, srv.Post(t, ownerA.AccessToken, `mutation($o: ID!, $u: ID!) { changeMemberRole(orgId: $o, userId: $u, role: MEMBER) { role } }`,
			map[string]any{"o": orgA, "u": demoted.UserID})).Decode(t, &ch)
		if ch.ChangeMemberRole.Role != "MEMBER" {
			t.Fatalf("demotion returned role %q", ch.ChangeMemberRole.Role)
		}
		before := authzDigest(t, scopeA)
		if r := srv.Post(t, demoted.AccessToken, `mutation($o: ID!, $e: String!) { inviteMember(orgId: $o, email: $e) { id } }`,
			map[string]any{"o": orgA, "e": UniqueEmail("xt-after-demotion")}); r.Code() != "FORBIDDEN" {
			t.Errorf("demoted admin inviting: want FORBIDDEN, got %s", r.Raw)
		}
		if r := srv.Post(t, demoted.AccessToken, q, map[string]any{"o": orgA}); r.Code() != "FORBIDDEN" {
			t.Errorf("demoted admin reading invitations: want FORBIDDEN, got %s", r.Raw)
		}
		var vr struct{ Organization struct{ ViewerRole string } }
		MustOK(t, srv.Post(t, demoted.AccessToken, `query($o: ID!) { organization(orgId: $o) { viewerRole } }`, map[string]any{"o": orgA})).Decode(t, &vr)
		if vr.Organization.ViewerRole != "MEMBER" {
			t.Errorf("viewerRole after demotion = %q, want MEMBER", vr.Organization.ViewerRole)
		}
		wantUnchanged(t, "org A", scopeA, before)
	})
}

// TestMalformedIDsAreBadUserInput: an ID that is not a UUID is the client's
// mistake (BAD_USER_INPUT), never an internal error, whether it comes as a
// variable or inline.
func TestMalformedIDsAreBadUserInput(t *testing.T) {
	t.Parallel()
	u := srv.RegisterVerified(t, "badid")
	org := srv.CreateOrg(t, u, "badid "+uuid.NewString()[:8])
	other := uuid.New()
	cases := []struct {
		name, query string
		vars        map[string]any
		arg         string // the argument at fault
	}{
		{"organization variable", `query($o: ID!) { organization(orgId: $o) { id } }`, map[string]any{"o": "not-a-uuid"}, "orgId"},
		{"organization inline", `{ organization(orgId: "not-a-uuid") { id } }`, nil, "orgId"},
		{"removeMember variable", `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
			map[string]any{"o": "not-a-uuid", "u": other}, "orgId"},
		{"removeMember inline", fmt.Sprintf(`mutation { removeMember(orgId: "not-a-uuid", userId: %q) }`, other), nil, "orgId"},
		{"removeMember userId variable", `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
			map[string]any{"o": org, "u": "not-a-uuid"}, "userId"},
	}
	ran := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := authzDigest(t, authzScope{orgs: []uuid.UUID{org}})
			r := srv.Post(t, u.AccessToken, c.query, c.vars)
			ran++
			if r.Code() != "BAD_USER_INPUT" {
				t.Errorf("want BAD_USER_INPUT, got %s", r.Raw)
			}
			// extensions.field names the argument at fault ("removeMember.orgId").
			if f := r.Field(); !strings.HasSuffix(f, "."+c.arg) {
				t.Errorf("extensions.field = %q, want the %s argument", f, c.arg)
			}
			wantUnchanged(t, "the tenancy rows", authzScope{orgs: []uuid.UUID{org}}, before)
		})
	}
	if ran != len(cases) || ran != 5 {
		t.Errorf("ran %d cases, want 5", ran)
	}
}

// wantLikeNowhere checks that rn, the same request with an id that exists
// nowhere, answers as r (another tenant's id) did: the same code, field and
// message, so that a refusal tells nothing about the other tenant.
func wantLikeNowhere(t *testing.T, r, rn Response) {
	t.Helper()
	if rn.Code() != r.Code() || rn.Field() != r.Field() {
		t.Errorf("random id: want %s (field %q), got %s", r.Code(), r.Field(), rn.Raw)
	}
	if len(r.Errors) > 0 && len(rn.Errors) > 0 && r.Errors[0].Message != rn.Errors[0].Message {
		t.Errorf("another tenant's id and a random id answer differently: %q vs %q", r.Errors[0].Message, rn.Errors[0].Message)
	}
}

// wantUnchanged checks that scope's digest is still before: a refused request
// changed nothing there.
func wantUnchanged(t *testing.T, name string, scope authzScope, before string) {
	t.Helper()
	if after := authzDigest(t, scope); after != before {
		t.Errorf("%s changed:\nbefore %s\nafter  %s", name, before, after)
	}
}
