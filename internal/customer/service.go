package customer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
	"tenantgraph/internal/tenant"
)

// Deps are what the service needs.
type Deps struct {
	DB   *sqlx.DB
	Gate *tenant.Gate
	// CountNotes, when set, counts a customer's notes for a timeline's
	// totalCount (the request's loader: many timelines, one query).
	CountNotes func(ctx context.Context, k Key) (int, error)
	Now        func() time.Time
}

// Service holds the customer rules. Reads are gated by the caller (the
// @hasRole directive: any member reads everything). Every mutation runs
// through the tenant gate (LockActor: writers of one organization do not
// serialize), re-checking the actor's role in its transaction, and writes
// exactly one audit event there; one that fails or changes nothing writes none.
//
// Roles: MEMBER creates and updates customers and writes notes, edits only
// its own notes and deletes only its own notes; ADMIN and OWNER also archive,
// restore, import, and delete any note. Editing a note is its author's only.
type Service struct {
	d     Deps
	store Store
}

// NewService returns the customer service.
func NewService(d Deps) *Service { return &Service{d: d} }

var (
	errNotFound     = apperr.New(apperr.NotFound, "customer not found")
	errNoteNotFound = apperr.New(apperr.NotFound, "note not found")
)

// constraints are the violations a customer write may meet, as clients see them.
var constraints = tenant.Constraints{
	emailKey:   {Code: apperr.Conflict, Field: "email", Message: "another customer of this organization has this email"},
	assigneeFK: {Code: apperr.NotFound, Field: "assigneeId", Message: "the assignee is not a member of this organization"},
	customerFK: {Code: apperr.NotFound, Message: "customer not found"},
}

// --- reads ---

// Get returns org's customer id (NOT_FOUND when org has none).
func (s *Service) Get(ctx context.Context, orgID, id uuid.UUID) (*Customer, error) {
	c, err := s.store.Get(ctx, s.d.DB, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("get customer: %w", err)
	}
	if c == nil {
		return nil, errNotFound
	}
	return c, nil
}

// Note returns org's note id (nil when there is none).
func (s *Service) Note(ctx context.Context, orgID, id uuid.UUID) (*CustomerNote, error) {
	n, err := s.store.Note(ctx, s.d.DB, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("customer note: %w", err)
	}
	return n, nil
}

// List returns a page of org's customers matching f.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, f Filter, first *int, after *string) (*CustomerConnection, error) {
	if f.Order.Field == "" {
		f.Order.Field = OrderByName
	}
	if f.Order.Direction == "" {
		f.Order.Direction = page.Asc
	}
	if f.Search != nil {
		q := strings.TrimSpace(*f.Search)
		if utf8.RuneCountInString(q) > MaxSearchLen || strings.IndexFunc(q, unicode.IsControl) >= 0 {
			return nil, apperr.Invalid("search", "search must be at most %d characters, without control characters", MaxSearchLen)
		}
		f.Search = &q
		if q == "" {
			f.Search = nil
		}
	}
	if f.Tag != nil {
		t := strings.ToLower(strings.TrimSpace(*f.Tag))
		f.Tag = &t
	}
	switch f.Order.Field {
	case OrderByCreatedAt:
		return list(ctx, s, orgID, f, first, after, func(c *Customer) time.Time { return c.CreatedAt })
	case OrderByUpdatedAt:
		return list(ctx, s, orgID, f, first, after, func(c *Customer) time.Time { return c.UpdatedAt })
	}
	return list(ctx, s, orgID, f, first, after, func(c *Customer) string { return c.Name })
}

// list is List for an ordering whose value (of type V) is value: its cursors
// are page.Keys of the ordering, refused by the others.
func list[V page.Value](ctx context.Context, s *Service, orgID uuid.UUID, f Filter, first *int, after *string, value func(*Customer) V) (*CustomerConnection, error) {
	of := string(f.Order.Field)
	req, err := page.Parse[V](first, after, of)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Page(ctx, s.d.DB, orgID, f, req.After, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("customers page: %w", err)
	}
	conn := page.Build(req, rows, func(c *Customer) page.Key[V] { return page.Key[V]{Of: of, V: value(c), ID: c.ID} },
		func(ctx context.Context) (int, error) { return s.store.Count(ctx, s.d.DB, orgID, f) })
	if f.Search != nil {
		// A search's count is capped (page.CountCap): "C" matches every customer.
		conn.Capped(func(ctx context.Context, limit int) (int, error) {
			return s.store.CountUpTo(ctx, s.d.DB, orgID, f, limit)
		})
	}
	return conn, nil
}

// NotesRequest is a timeline page of several customers: all share First and After.
type NotesRequest struct {
	Customers []Key
	First     int
	After     *string
}

// NotesPages returns a page of notes, newest first, for each of the request's
// customers with one query, and all the notes (to prefetch their authors). A
// connection's totalCount goes through Deps.CountNotes when set.
func (s *Service) NotesPages(ctx context.Context, r NotesRequest) (map[Key]*CustomerNoteConnection, []*CustomerNote, error) {
	req, err := page.Parse[time.Time](&r.First, r.After, "")
	if err != nil {
		return nil, nil, err
	}
	pages, err := s.store.NotesPages(ctx, s.d.DB, r.Customers, req.After, req.Limit())
	if err != nil {
		return nil, nil, fmt.Errorf("notes pages: %w", err)
	}
	out := page.Each(req, r.Customers, pages,
		func(n *CustomerNote) page.Key[time.Time] { return page.Key[time.Time]{V: n.CreatedAt, ID: n.ID} },
		page.Counts[Key]{Loaded: s.d.CountNotes, Direct: s.NoteCounts}.Of)
	var all []*CustomerNote
	for _, c := range out {
		all = append(all, c.Nodes()...)
	}
	return out, all, nil
}

// ByKeys returns the customers of keys that exist (each key names its
// organization), with one query: the customers' loader.
func (s *Service) ByKeys(ctx context.Context, keys []Key) ([]*Customer, error) {
	cs, err := s.store.ByKeys(ctx, s.d.DB, keys)
	if err != nil {
		return nil, fmt.Errorf("customers by key: %w", err)
	}
	return cs, nil
}

// NoteCounts returns each key's number of notes (for loaders).
func (s *Service) NoteCounts(ctx context.Context, keys []Key) (map[Key]int, error) {
	return s.store.NoteCounts(ctx, s.d.DB, keys)
}

// --- customers ---

// Create adds a customer (MEMBER or above). With key, a retry of the same
// creation returns the customer the first one made (tenant.Once).
func (s *Service) Create(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, in CreateCustomerInput, key *string) (*Customer, error) {
	asSent := in
	if errs := normalizeCreate(&in, ""); len(errs) > 0 {
		return nil, errs[0]
	}
	return write(ctx, s, actor, orgID, tenant.RoleMember, func(t *tenant.Tx) (*Customer, error) {
		return tenant.Once(ctx, t, key, "customer.create", asSent, func() (*Customer, error) {
			out, err := s.store.Insert(ctx, t, orgID, &in, actor.UserID, t.Now)
			if err != nil {
				return nil, constraints.Map(err, "")
			}
			return out, t.Audit(ctx, "customer.created", "customer", out.ID.String(), map[string]any{"after": snapshot(out)})
		})
	})
}

// Update changes the fields p sets (MEMBER or above). With expectedVersion, a
// customer changed since that version is CONFLICT and nothing changes. An
// update that changes nothing keeps the version and writes no audit event.
func (s *Service) Update(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, p Patch, expectedVersion *int) (*Customer, error) {
	if err := normalizePatch(&p); err != nil {
		return nil, err
	}
	return write(ctx, s, actor, orgID, tenant.RoleMember, func(t *tenant.Tx) (*Customer, error) {
		return tenant.Update(ctx, t, s.rows(), id, expectedVersion, func(c *Customer) { apply(c, p) })
	})
}

// Archive hides a customer from the default list (ADMIN or above).
func (s *Service) Archive(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Customer, error) {
	return s.setArchived(ctx, actor, orgID, id, true)
}

// Restore brings an archived customer back (ADMIN or above).
func (s *Service) Restore(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Customer, error) {
	return s.setArchived(ctx, actor, orgID, id, false)
}

func (s *Service) setArchived(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, archive bool) (*Customer, error) {
	return write(ctx, s, actor, orgID, tenant.RoleAdmin, func(t *tenant.Tx) (*Customer, error) {
		return tenant.SetArchived(ctx, t, s.rows(), id, archive, func(c *Customer) map[string]any { return map[string]any{"name": c.Name} })
	})
}

// rows is how the kit edits customers (tenant.Update, tenant.SetArchived).
func (s *Service) rows() tenant.Rows[Customer] {
	return tenant.Rows[Customer]{Kind: "customer", Lock: s.store.ForUpdate, NotFound: errNotFound, Save: s.store.Update,
		Snapshot: snapshot, ArchivedAt: func(c *Customer) **time.Time { return &c.ArchivedAt }, Constraints: constraints}
}

// Import adds up to MaxImportRows customers in one transaction with a fixed
// number of statements (ADMIN or above), all or none. Every refused row is
// reported, with its index and field (input[17].email), as one error of the
// returned apperr.List: invalid fields, emails twice in the batch (the later
// rows) or already used in the organization, assignees who are not members.
// With key, a retry of the same import returns the first one's customers
// (tenant.Once) and imports nothing again.
func (s *Service) Import(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, ins []*CreateCustomerInput, key *string) ([]*Customer, error) {
	if len(ins) > MaxImportRows {
		return nil, apperr.Invalid("input", "an import takes at most %d customers", MaxImportRows)
	}
	if len(ins) == 0 {
		return nil, apperr.Invalid("input", "an import takes at least one customer")
	}
	asSent := make([]CreateCustomerInput, len(ins))
	for i, in := range ins {
		asSent[i] = *in
	}
	var inputErrs apperr.List
	rows := ins
	firstWith := map[string]int{}
	var emails []string
	var assignees []uuid.UUID
	for i := range rows {
		prefix := fmt.Sprintf("input[%d].", i)
		inputErrs = append(inputErrs, normalizeCreate(rows[i], prefix)...)
		if e := rows[i].Email; e != nil {
			if j, dup := firstWith[*e]; dup {
				inputErrs = append(inputErrs, &apperr.Error{Code: apperr.Conflict, Field: prefix + "email",
					Message: fmt.Sprintf("input[%d]: the email is also in input[%d]", i, j)})
			} else {
				firstWith[*e] = i
				emails = append(emails, *e)
			}
		}
		if a := rows[i].AssigneeID; a != nil {
			assignees = append(assignees, *a)
		}
	}
	return write(ctx, s, actor, orgID, tenant.RoleAdmin, func(t *tenant.Tx) ([]*Customer, error) {
		return tenant.Once(ctx, t, key, "customer.import", asSent, func() ([]*Customer, error) {
			// Always both checks: the statements do not depend on the rows.
			used, err := s.store.ExistingEmails(ctx, t, orgID, emails)
			if err != nil {
				return nil, fmt.Errorf("import: existing emails: %w", err)
			}
			members, err := s.store.Members(ctx, t, orgID, assignees)
			if err != nil {
				return nil, fmt.Errorf("import: assignees: %w", err)
			}
			errs := slices.Clone(inputErrs) // this attempt's: the gate may run it again
			for i, in := range rows {
				if in.Email != nil && used[*in.Email] && firstWith[*in.Email] == i {
					errs = append(errs, inRow(i, constraints[emailKey].At("email")))
				}
				if in.AssigneeID != nil && !members[*in.AssigneeID] {
					errs = append(errs, inRow(i, constraints[assigneeFK].At("assigneeId")))
				}
			}
			if len(errs) > 0 {
				errs.Sort()
				return nil, errs
			}
			out, err := s.store.InsertMany(ctx, t, orgID, rows, actor.UserID, t.Now)
			if err != nil {
				// A concurrent write took an email or a membership ended meanwhile.
				if db.IsViolation(err, db.UniqueViolation, emailKey) {
					return nil, constraints[emailKey].At(importRowField(err, rows))
				}
				return nil, constraints.Map(err, "input.")
			}
			return out, t.Audit(ctx, "customer.imported", "customer", "", map[string]any{"count": len(out)})
		})
	})
}

// inRow names row i of an import in e's field and message, like the input
// checks do: input[3].email, "input[3]: …".
func inRow(i int, e *apperr.Error) *apperr.Error {
	e.Field = fmt.Sprintf("input[%d].%s", i, e.Field)
	e.Message = fmt.Sprintf("input[%d]: %s", i, e.Message)
	return e
}

// importRowField names the email field of the row a unique violation is about.
func importRowField(err error, rows []*CreateCustomerInput) string {
	if pe, ok := err.(*pq.Error); ok {
		for i, r := range rows {
			if r.Email != nil && strings.Contains(pe.Detail, ", "+*r.Email+")") {
				return fmt.Sprintf("input[%d].email", i)
			}
		}
	}
	return "input"
}

// --- notes ---

// AddNote writes a note on org's customer (MEMBER or above).
func (s *Service) AddNote(ctx context.Context, actor auth.Viewer, orgID, customerID uuid.UUID, body string) (*CustomerNote, error) {
	body, err := noteBody(body)
	if err != nil {
		return nil, err
	}
	return write(ctx, s, actor, orgID, tenant.RoleMember, func(t *tenant.Tx) (*CustomerNote, error) {
		out, err := s.store.InsertNote(ctx, t, orgID, customerID, actor.UserID, body, t.Now)
		if err != nil {
			return nil, constraints.Map(err, "")
		}
		return out, t.Audit(ctx, "customer_note.created", "customer_note", out.ID.String(),
			map[string]any{"customerId": customerID, "length": utf8.RuneCountInString(body)})
	})
}

// UpdateNote replaces a note's body: its author only, whatever the role.
func (s *Service) UpdateNote(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, body string) (*CustomerNote, error) {
	body, err := noteBody(body)
	if err != nil {
		return nil, err
	}
	return write(ctx, s, actor, orgID, tenant.RoleMember, func(t *tenant.Tx) (*CustomerNote, error) {
		n, err := tenant.LockRow(ctx, t, s.store.NoteForUpdate, id, errNoteNotFound)
		if err != nil {
			return nil, err
		}
		if n.AuthorID == nil || *n.AuthorID != actor.UserID {
			return nil, apperr.New(apperr.Forbidden, "only the note's author may edit it")
		}
		if n.Body == body {
			return n, nil
		}
		out, err := s.store.UpdateNote(ctx, t, orgID, id, body, t.Now)
		if err != nil {
			return nil, fmt.Errorf("update note: %w", err)
		}
		return out, t.Audit(ctx, "customer_note.updated", "customer_note", id.String(),
			map[string]any{"customerId": n.CustomerID, "before": n.Body, "after": body})
	})
}

// DeleteNote deletes a note: its author, or an ADMIN or OWNER.
func (s *Service) DeleteNote(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) error {
	return s.d.Gate.Run(ctx, actor.UserID, orgID, tenant.RoleMember, tenant.LockActor, func(t *tenant.Tx) error {
		n, err := tenant.LockRow(ctx, t, s.store.NoteForUpdate, id, errNoteNotFound)
		if err != nil {
			return err
		}
		own := n.AuthorID != nil && *n.AuthorID == actor.UserID
		if !own && !t.Actor.Role.AtLeast(tenant.RoleAdmin) {
			return apperr.New(apperr.Forbidden, "only the note's author or an ADMIN may delete it")
		}
		if err := s.store.DeleteNote(ctx, t, orgID, id); err != nil {
			return fmt.Errorf("delete note: %w", err)
		}
		return t.Audit(ctx, "customer_note.deleted", "customer_note", id.String(),
			map[string]any{"customerId": n.CustomerID, "authorId": n.AuthorID, "body": n.Body})
	})
}

// --- helpers ---

// write runs fn through the tenant gate as an ordinary tenant write
// (LockActor: writers of one organization do not serialize).
func write[T any](ctx context.Context, s *Service, actor auth.Viewer, orgID uuid.UUID, role tenant.Role, fn func(t *tenant.Tx) (T, error)) (T, error) {
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, role, tenant.LockActor, fn)
}

// normalizeCreate trims and checks a creation form in place, filling the
// default status; it returns one error per refused field (prefix before each
// field name).
func normalizeCreate(in *CreateCustomerInput, prefix string) apperr.List {
	var errs apperr.List
	check := func(err error) {
		if e, ok := apperr.As(err); ok {
			e2 := *e
			if prefix != "" {
				e2.Field = prefix + e.Field
				e2.Message = strings.TrimSuffix(prefix, ".") + ": " + e.Message
			}
			errs = append(errs, &e2)
		}
	}
	var err error
	if in.Name, err = validate.Name("name", in.Name, MaxNameLen); err != nil {
		check(err)
	}
	if in.Email, err = validate.Optional(in.Email, validate.Email); err != nil {
		check(err)
	}
	if in.Phone, err = validate.Optional(in.Phone, phone); err != nil {
		check(err)
	}
	if in.Company, err = validate.Optional(in.Company, company); err != nil {
		check(err)
	}
	if in.Tags, err = normalizeTags(in.Tags); err != nil {
		check(err)
	}
	if in.Status == nil {
		st := StatusLead
		in.Status = &st
	}
	return errs
}

func normalizePatch(p *Patch) error {
	var err error
	if p.Name != nil {
		var n string
		if n, err = validate.Name("name", *p.Name, MaxNameLen); err != nil {
			return err
		}
		p.Name = &n
	}
	if p.Email.Set {
		if p.Email.Value, err = validate.Optional(p.Email.Value, validate.Email); err != nil {
			return err
		}
	}
	if p.Phone.Set {
		if p.Phone.Value, err = validate.Optional(p.Phone.Value, phone); err != nil {
			return err
		}
	}
	if p.Company.Set {
		if p.Company.Value, err = validate.Optional(p.Company.Value, company); err != nil {
			return err
		}
	}
	if p.Tags != nil {
		var t []string
		if t, err = normalizeTags(*p.Tags); err != nil {
			return err
		}
		p.Tags = &t
	}
	return nil
}

// phone checks a phone number (docs/api.md, "Customers"): an optional
// leading +, then digits, spaces and ( ) . / -, 3 to 32 characters in all,
// at least 3 of them digits (validate.Optional makes blank none).
func phone(p string) (string, error) {
	bad := apperr.Invalid("phone", "a phone number is 3 to 32 digits, spaces and + ( ) . / - (a + only first), with at least 3 digits")
	if len(p) < 3 || len(p) > 32 {
		return "", bad
	}
	digits := 0
	for i, r := range p {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0:
		case strings.ContainsRune(" ()./-", r):
		default:
			return "", bad
		}
	}
	if digits < 3 {
		return "", bad
	}
	return p, nil
}

// company checks a company name like a name.
func company(v string) (string, error) { return validate.Name("company", v, MaxCompanyLen) }

// normalizeTags trims and lower-cases tags and drops repeats (tags are a set,
// in the order first given); nil is none.
func normalizeTags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, raw := range in {
		t := strings.ToLower(strings.TrimSpace(raw))
		if t == "" || utf8.RuneCountInString(t) > MaxTagLen || !utf8.ValidString(t) ||
			strings.IndexFunc(t, unicode.IsControl) >= 0 || strings.TrimSpace(t) != t {
			return nil, apperr.Invalid("tags", "a tag is 1 to %d characters, without control characters", MaxTagLen)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > MaxTags {
		return nil, apperr.Invalid("tags", "a customer has at most %d tags", MaxTags)
	}
	return out, nil
}

func noteBody(raw string) (string, error) {
	b := strings.TrimSpace(raw)
	if b == "" || utf8.RuneCountInString(b) > MaxNoteLen || !utf8.ValidString(b) {
		return "", apperr.Invalid("body", "a note is 1 to %d characters", MaxNoteLen)
	}
	return b, nil
}

func apply(c *Customer, p Patch) {
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Email.Set {
		c.Email = p.Email.Value
	}
	if p.Phone.Set {
		c.Phone = p.Phone.Value
	}
	if p.Company.Set {
		c.Company = p.Company.Value
	}
	if p.Tags != nil {
		c.Tags = *p.Tags
	}
	if p.Status != nil {
		c.Status = *p.Status
	}
	if p.Assignee.Set {
		c.AssigneeID = p.Assignee.Value
	}
}

// snapshot is a customer's fields as the audit log records them.
func snapshot(c *Customer) map[string]any {
	return map[string]any{"name": c.Name, "email": c.Email, "phone": c.Phone, "company": c.Company,
		"tags": c.Tags, "status": c.Status, "assigneeId": c.AssigneeID}
}
