package customer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
)

// Store is the customers' SQL. Every method takes the organization first and
// every query is scoped by it.
type Store struct{}

// Constraint names the service maps to field errors.
const (
	emailKey    = "customers_org_email_key"
	assigneeFK  = "customers_assignee_fkey"
	customerFK  = "customer_notes_customer_fkey"
	customerCol = `c.organization_id, c.id, c.name, c.email, c.phone, c.company, c.tags, c.status,
	c.assignee_id, c.created_by, c.created_at, c.updated_at, c.archived_at, c.version`
	// inputCols are the columns a CreateCustomerInput fills (its json names).
	inputCols = `name, email, phone, company, tags, status, assignee_id`
	noteCols  = `n.organization_id, n.id, n.customer_id, n.author_id, n.body, n.created_at, n.updated_at`
	// customerSearchExpr is the expression migrations/00008 indexes with gin_trgm_ops:
	// keep the two identical, or searches stop using the index.
	customerSearchExpr = `(c.name || ' ' || coalesce(c.email, '') || ' ' || coalesce(c.company, ''))`
)

// customerRow scans a customer with its tags.
type customerRow struct {
	Customer
	Tags pq.StringArray `db:"tags"`
}

func (r *customerRow) customer() *Customer {
	c := r.Customer
	c.Tags = []string(r.Tags)
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return &c
}

func toCustomers(rows []customerRow) []*Customer {
	out := make([]*Customer, len(rows))
	for i := range rows {
		out[i] = rows[i].customer()
	}
	return out
}

func getCustomer(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) (*Customer, error) {
	r, err := db.GetOrNil[customerRow](ctx, q, query, args...)
	if err != nil || r == nil {
		return nil, err
	}
	return r.customer(), nil
}

// Insert creates a customer (InsertMany of one).
func (s Store) Insert(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, in *CreateCustomerInput, by uuid.UUID, now time.Time) (*Customer, error) {
	out, err := s.InsertMany(ctx, q, org, []*CreateCustomerInput{in}, by, now)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// importRow is one row of InsertMany's JSON: the input under the names of the
// columns it fills, and the id it is given.
type importRow struct {
	ID uuid.UUID `json:"id"`
	*CreateCustomerInput
}

// InsertMany creates the customers of ins (normalized: Tags and Status set)
// with one statement, whatever their number, and returns them in the order of
// ins. The rows travel as one JSON array, read as customers rows.
func (Store) InsertMany(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, ins []*CreateCustomerInput, by uuid.UUID, now time.Time) ([]*Customer, error) {
	rows := make([]importRow, len(ins))
	for i, in := range ins {
		rows[i] = importRow{ID: uuid.New(), CreateCustomerInput: in}
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	var got []customerRow
	err = sqlx.SelectContext(ctx, q, &got, `
		INSERT INTO customers AS c (organization_id, id, `+inputCols+`, created_by, created_at, updated_at)
		SELECT $1, id, `+inputCols+`, $3, $4, $4 FROM jsonb_populate_recordset(NULL::customers, $2::jsonb)
		RETURNING `+customerCol, org, string(doc), by, now)
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]*Customer, len(got))
	for i := range got {
		byID[got[i].ID] = got[i].customer()
	}
	out := make([]*Customer, len(rows))
	for i, r := range rows {
		if out[i] = byID[r.ID]; out[i] == nil {
			return nil, fmt.Errorf("insert customers: row %d not returned", i)
		}
	}
	return out, nil
}

// ExistingEmails returns which of emails (normalized) org's customers already use.
func (Store) ExistingEmails(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, emails []string) (map[string]bool, error) {
	var found []string
	err := sqlx.SelectContext(ctx, q, &found, `
		SELECT lower(email) FROM customers WHERE organization_id = $1 AND lower(email) = ANY($2::text[])`,
		org, pq.Array(emails))
	out := make(map[string]bool, len(found))
	for _, e := range found {
		out[e] = true
	}
	return out, err
}

// Members returns which of users are members of org.
func (Store) Members(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, users []uuid.UUID) (map[uuid.UUID]bool, error) {
	var found []uuid.UUID
	err := sqlx.SelectContext(ctx, q, &found, `
		SELECT user_id FROM organization_members WHERE organization_id = $1 AND user_id = ANY($2::uuid[])`,
		org, pq.Array(users))
	out := make(map[uuid.UUID]bool, len(found))
	for _, u := range found {
		out[u] = true
	}
	return out, err
}

// ForUpdate locks and returns org's customer id; nil when org has none.
func (Store) ForUpdate(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Customer, error) {
	return getCustomer(ctx, q, `SELECT `+customerCol+` FROM customers c WHERE c.organization_id = $1 AND c.id = $2 FOR UPDATE`, org, id)
}

// Get returns org's customer id; nil when org has none.
func (Store) Get(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Customer, error) {
	return getCustomer(ctx, q, `SELECT `+customerCol+` FROM customers c WHERE c.organization_id = $1 AND c.id = $2`, org, id)
}

// Update writes c's fields (as the service changed them), bumps the version and
// sets updated_at.
func (Store) Update(ctx context.Context, q sqlx.QueryerContext, c *Customer, now time.Time) (*Customer, error) {
	return getCustomer(ctx, q, `
		UPDATE customers c SET name = $3, email = $4, phone = $5, company = $6, tags = $7, status = $8,
			assignee_id = $9, archived_at = $10, updated_at = $11, version = c.version + 1
		WHERE c.organization_id = $1 AND c.id = $2 RETURNING `+customerCol,
		c.OrganizationID, c.ID, c.Name, c.Email, c.Phone, c.Company, pq.Array(c.Tags), c.Status, c.AssigneeID, c.ArchivedAt, now)
}

// order is the SQL of a customer list's ordering, then by id: a name
// case-insensitively, then byte by byte.
func order(o CustomerOrder) page.Order {
	switch o.Field {
	case OrderByCreatedAt:
		return page.Order{Col: "c.created_at", ID: "c.id", Dir: o.Direction}
	case OrderByUpdatedAt:
		return page.Order{Col: "c.updated_at", ID: "c.id", Dir: o.Direction}
	}
	return page.Order{Col: "c.name", ID: "c.id", Dir: o.Direction, Fold: true}
}

// where builds the filter of a list: the statement's text depends on which
// filters are present (so that each shape gets a plan of its own, the search
// one on the trigram index), the values are parameters.
func where(org uuid.UUID, f Filter) (string, []any) {
	return whereOrg(org, "$1", f)
}

// whereOrg is where with the organization's parameter written as db.OrgParam
// ("$1", or db.Unestimated's form of it).
func whereOrg(org uuid.UUID, orgParam string, f Filter) (string, []any) {
	args := []any{org}
	conds := []string{"c.organization_id = " + orgParam}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if !f.IncludeArchived {
		conds = append(conds, "c.archived_at IS NULL")
	}
	if f.Status != nil {
		add("c.status = ?", string(*f.Status))
	}
	if f.Tag != nil {
		add("c.tags @> ARRAY[?::text]", *f.Tag)
	}
	if f.AssigneeID != nil {
		add("c.assignee_id = ?", *f.AssigneeID)
	}
	if f.Search != nil {
		add(customerSearchExpr+" ILIKE ?", db.LikeContains(*f.Search))
	}
	return strings.Join(conds, " AND "), args
}

// Page returns up to limit of org's customers matching f after cur (a
// page.Key of f.Order's value type), in f.Order.
func (Store) Page(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, cur page.Cursor, limit int) ([]*Customer, error) {
	short := db.ShortTerm(f.Search)
	cond, args := whereOrg(org, db.OrgParam(f.Search), f)
	o := order(f.Order)
	after, args := page.After(o, cur, args)
	args = append(args, limit)
	// A search is planned for its term on every call (db.CustomPlan): a term
	// that matches thousands walks the ordering's index and stops at the page,
	// a rare one reads the trigram index and sorts its few matches. One generic
	// plan for all terms (a prepared statement's, after 5 calls) sorted all
	// 8,600 matches of "logistics" (35 ms instead of 0.4) and all 100,000
	// customers for a term under 3 characters (160 ms instead of 0.2).
	hint := ""
	if f.Search != nil {
		hint = db.CustomPlan
	}
	query := fmt.Sprintf(`%sSELECT %s FROM customers c WHERE %s%s ORDER BY %s LIMIT $%d`,
		hint, customerCol, cond, after, o.By(), len(args))
	if short {
		// A term without a trigram ("C", "Cu": what a search box sends first)
		// has no index to narrow it, and usually matches most customers: the
		// page's keys come from a walk of the ordering's index that stops at
		// the page, then its rows by key. In NAME order the walk is index-only
		// (customers_name_page_idx includes the searched columns,
		// migrations/00020), and the organization is db.Unestimated: one that
		// the statistics do not know yet (an import of 30,000 just made) was
		// estimated at one row, and its whole list read and sorted for every
		// keystroke (23 ms at 30,000, instead of 2.5).
		query = fmt.Sprintf(`%sSELECT %s FROM (SELECT c.organization_id, c.id FROM customers c WHERE %s%s ORDER BY %s LIMIT $%d) k
			JOIN customers c ON c.organization_id = k.organization_id AND c.id = k.id ORDER BY %s`,
			hint, customerCol, cond, after, o.By(), len(args), o.By())
	}
	var rows []customerRow
	err := sqlx.SelectContext(ctx, q, &rows, query, args...)
	return toCustomers(rows), err
}

// Count counts org's customers matching f (without a search): on
// customers_active_idx (migrations/00011) with an index-only scan, or for
// includeArchived on customers_assignee_idx.
func (Store) Count(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter) (int, error) {
	cond, args := where(org, f)
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT count(*) FROM customers c WHERE `+cond, args...)
	return n, err
}

// CountUpTo counts org's customers matching f, but at most limit of them (a
// search's capped totalCount: db.CountUpTo). A term without a trigram is
// counted as Page walks it (the organization db.Unestimated, in f.Order): with
// the organization's own estimate, one holding a third of the table was
// counted by a sequential scan that first read every other organization's
// rows stored before its own (20 ms instead of 7).
func (Store) CountUpTo(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, limit int) (int, error) {
	cond, args := whereOrg(org, db.OrgParam(f.Search), f)
	by := ""
	if db.ShortTerm(f.Search) {
		by = order(f.Order).By()
	}
	return db.CountUpTo(ctx, q, `customers c WHERE `+cond, by, limit, args...)
}

// --- notes ---

// noteRow is a note read with its author's account (noteAuthorCols, over
// "LEFT JOIN users u ON u.id = n.author_id").
type noteRow struct {
	CustomerNote
	UFound      bool       `db:"u_found"`
	UEmail      string     `db:"u_email"`
	UName       string     `db:"u_name"`
	UVerifiedAt *time.Time `db:"u_verified_at"`
	UCreatedAt  time.Time  `db:"u_created_at"`
}

// noteAuthorCols are a note's and its author's columns, none null but the
// verification time (a pointer each would cost an allocation a row).
const (
	noteAuthorCols = noteCols + `, u.id IS NOT NULL AS u_found, coalesce(u.email, '') AS u_email, coalesce(u.name, '') AS u_name,
		u.email_verified_at AS u_verified_at, coalesce(u.created_at, n.created_at) AS u_created_at`
	noteAuthorJoin = ` LEFT JOIN users u ON u.id = n.author_id`
)

func (r *noteRow) note() *CustomerNote {
	n := r.CustomerNote
	if n.AuthorID != nil && r.UFound {
		n.Author = &auth.User{ID: *n.AuthorID, Email: r.UEmail, Name: r.UName, EmailVerifiedAt: r.UVerifiedAt, CreatedAt: r.UCreatedAt}
	}
	return &n
}

func getNote(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) (*CustomerNote, error) {
	r, err := db.GetOrNil[noteRow](ctx, q, query, args...)
	if r == nil {
		return nil, err
	}
	return r.note(), err
}

// InsertNote adds a note to org's customer.
func (Store) InsertNote(ctx context.Context, q sqlx.QueryerContext, org, customer, author uuid.UUID, body string, now time.Time) (*CustomerNote, error) {
	return getNote(ctx, q, `
		WITH n AS (INSERT INTO customer_notes (organization_id, customer_id, author_id, body, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING *)
		SELECT `+noteAuthorCols+` FROM n`+noteAuthorJoin, org, customer, author, body, now)
}

// Note returns org's note id; nil when org has none.
func (Store) Note(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*CustomerNote, error) {
	return note(ctx, q, org, id, "")
}

// NoteForUpdate locks and returns org's note id; nil when org has none.
func (Store) NoteForUpdate(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*CustomerNote, error) {
	return note(ctx, q, org, id, " FOR UPDATE OF n")
}

func note(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, lock string) (*CustomerNote, error) {
	return getNote(ctx, q, `SELECT `+noteAuthorCols+` FROM customer_notes n`+noteAuthorJoin+`
		WHERE n.organization_id = $1 AND n.id = $2`+lock, org, id)
}

// UpdateNote replaces a note's body.
func (Store) UpdateNote(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, body string, now time.Time) (*CustomerNote, error) {
	return getNote(ctx, q, `
		WITH n AS (UPDATE customer_notes SET body = $3, updated_at = $4 WHERE organization_id = $1 AND id = $2 RETURNING *)
		SELECT `+noteAuthorCols+` FROM n`+noteAuthorJoin, org, id, body, now)
}

// DeleteNote deletes a note.
func (Store) DeleteNote(ctx context.Context, q sqlx.ExecerContext, org, id uuid.UUID) error {
	_, err := q.ExecContext(ctx, `DELETE FROM customer_notes WHERE organization_id = $1 AND id = $2`, org, id)
	return err
}

// noteOrder is a timeline's: newest first.
var noteOrder = page.Order{Col: "n.created_at", ID: "n.id", Dir: page.Desc}

// NotesPages returns, for each customer of keys, up to limit of its notes after
// cur (a creation time and id), in noteOrder, with one query.
func (Store) NotesPages(ctx context.Context, q sqlx.QueryerContext, keys []Key, cur *page.Key[time.Time], limit int) (map[Key][]*CustomerNote, error) {
	orgs, custs := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Customer })
	var rows []noteRow
	after, args := page.After(noteOrder, cur, []any{orgs, custs, limit})
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT p.* FROM unnest($1::uuid[], $2::uuid[]) AS k(org, cust) CROSS JOIN LATERAL (
			SELECT `+noteAuthorCols+` FROM customer_notes n`+noteAuthorJoin+`
			WHERE n.organization_id = k.org AND n.customer_id = k.cust`+after+`
			ORDER BY `+noteOrder.By()+` LIMIT $3
		) p`, args...)
	if err != nil {
		return nil, err
	}
	out := make(map[Key][]*CustomerNote, len(keys))
	authors := map[uuid.UUID]*auth.User{} // a page's notes share their authors' accounts
	for i := range rows {
		r := &rows[i]
		var shared *auth.User
		if r.AuthorID != nil && r.UFound {
			if shared = authors[*r.AuthorID]; shared != nil {
				r.UFound = false // no new copy of the account
			}
		}
		n := r.note()
		switch {
		case shared != nil:
			n.Author = shared
		case n.Author != nil:
			authors[n.Author.ID] = n.Author
		}
		k := Key{Org: n.OrganizationID, Customer: n.CustomerID}
		out[k] = append(out[k], n)
	}
	return out, nil
}

// NoteCounts returns the number of notes of each customer of keys, with one query.
func (Store) NoteCounts(ctx context.Context, q sqlx.QueryerContext, keys []Key) (map[Key]int, error) {
	orgs, custs := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Customer })
	var rows []struct {
		Org  uuid.UUID `db:"organization_id"`
		Cust uuid.UUID `db:"customer_id"`
		N    int       `db:"n"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT n.organization_id, n.customer_id, count(*) AS n
		FROM unnest($1::uuid[], $2::uuid[]) AS k(org, cust)
		JOIN customer_notes n ON n.organization_id = k.org AND n.customer_id = k.cust
		GROUP BY n.organization_id, n.customer_id`, orgs, custs)
	out := make(map[Key]int, len(keys))
	for _, r := range rows {
		out[Key{Org: r.Org, Customer: r.Cust}] = r.N
	}
	return out, err
}

// ByKeys returns the customers of keys (each of its own organization) that
// exist, with one query.
func (Store) ByKeys(ctx context.Context, q sqlx.QueryerContext, keys []Key) ([]*Customer, error) {
	orgs, custs := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Customer })
	var rows []customerRow
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+customerCol+`
		FROM unnest($1::uuid[], $2::uuid[]) AS k(org, id) JOIN customers c ON c.organization_id = k.org AND c.id = k.id`,
		orgs, custs)
	return toCustomers(rows), err
}
