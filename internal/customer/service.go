package customer

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/account"
	"tenantgraph/internal/apperr"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
)

// Auditor records an audit event in the caller's transaction (the audit area).
type Auditor interface {
	Record(ctx context.Context, tx sqlx.ExecerContext, e audit.Entry) error
}

// Deps are what the service needs.
type Deps struct {
	DB    *sqlx.DB
	Gate  *org.Gate
	Audit Auditor
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

// List returns a page of org's customers matching f.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, f Filter, first *int, after *string) (*CustomerConnection, error) {
	if f.Order.Field == "" {
		f.Order.Field = OrderByName
	}
	if f.Order.Direction == "" {
		f.Order.Direction = Asc
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
	req, err := page.Parse[customerCursor](first, after)
	if err != nil {
		return nil, err
	}
	if req.After != nil && req.After.Order != f.Order.Field {
		return nil, apperr.Invalid("after", "the cursor belongs to another ordering")
	}
	rows, err := s.store.Page(ctx, s.d.DB, orgID, f, req.After, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("customers page: %w", err)
	}
	return page.Build(req, rows, keysetOf(f.Order.Field), func(ctx context.Context) (int, error) {
		return s.store.Count(ctx, s.d.DB, orgID, f)
	}), nil
}

// NotesRequest is a timeline page of several customers: all share First and After.
type NotesRequest struct {
	Customers []Key
	First     int
	After     *string
}

// NotesPages returns a page of notes, newest first, for each of the request's
// customers with one query, and all the notes (to prefetch their authors). A
// connection's totalCount goes through Deps.CountNotes.
func (s *Service) NotesPages(ctx context.Context, r NotesRequest) (map[Key]*CustomerNoteConnection, []*CustomerNote, error) {
	req, err := page.Parse[noteCursor](&r.First, r.After)
	if err != nil {
		return nil, nil, err
	}
	pages, err := s.store.NotesPages(ctx, s.d.DB, r.Customers, req.After, req.Limit())
	if err != nil {
		return nil, nil, fmt.Errorf("notes pages: %w", err)
	}
	out := make(map[Key]*CustomerNoteConnection, len(r.Customers))
	var all []*CustomerNote
	for _, k := range r.Customers {
		k := k
		out[k] = page.Build(req, pages[k], func(n *CustomerNote) noteCursor { return noteCursor{n.CreatedAt, n.ID} },
			func(ctx context.Context) (int, error) { return s.countNotes(ctx, k) })
		all = append(all, out[k].Nodes()...)
	}
	return out, all, nil
}

// NoteCounts returns each key's number of notes (for loaders).
func (s *Service) NoteCounts(ctx context.Context, keys []Key) (map[Key]int, error) {
	return s.store.NoteCounts(ctx, s.d.DB, keys)
}

func (s *Service) countNotes(ctx context.Context, k Key) (int, error) {
	if s.d.CountNotes != nil {
		return s.d.CountNotes(ctx, k)
	}
	n, err := s.store.NoteCounts(ctx, s.d.DB, []Key{k})
	return n[k], err
}

// --- customers ---

// Create adds a customer (MEMBER or above).
func (s *Service) Create(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, in CreateCustomerInput) (*Customer, error) {
	if errs := normalizeCreate(&in, ""); len(errs) > 0 {
		return nil, errs[0]
	}
	var out *Customer
	err := s.gate(ctx, actor, orgID, org.RoleMember, func(t *org.Tx) error {
		var err error
		if out, err = s.store.Insert(ctx, t, orgID, &in, actor.UserID, t.Now); err != nil {
			return writeError(err, "")
		}
		return s.audit(ctx, t, "customer.created", "customer", out.ID, map[string]any{"after": snapshot(out)})
	})
	return out, err
}

// Update changes the fields p sets (MEMBER or above). With expectedVersion, a
// customer changed since that version is CONFLICT and nothing changes. An
// update that changes nothing keeps the version and writes no audit event.
func (s *Service) Update(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, p Patch, expectedVersion *int) (*Customer, error) {
	if err := normalizePatch(&p); err != nil {
		return nil, err
	}
	var out *Customer
	err := s.gate(ctx, actor, orgID, org.RoleMember, func(t *org.Tx) error {
		c, err := s.locked(ctx, t, orgID, id, expectedVersion)
		if err != nil {
			return err
		}
		if c.ArchivedAt != nil {
			return apperr.New(apperr.Conflict, "the customer is archived: restore it first")
		}
		next := *c
		apply(&next, p)
		before, after := diff(c, &next)
		if len(after) == 0 {
			out = c
			return nil
		}
		if out, err = s.store.Update(ctx, t, &next, t.Now); err != nil {
			return writeError(err, "")
		}
		return s.audit(ctx, t, "customer.updated", "customer", id, map[string]any{"before": before, "after": after})
	})
	return out, err
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
	var out *Customer
	err := s.gate(ctx, actor, orgID, org.RoleAdmin, func(t *org.Tx) error {
		c, err := s.locked(ctx, t, orgID, id, nil)
		if err != nil {
			return err
		}
		action := "customer.restored"
		next := *c
		if archive {
			if c.ArchivedAt != nil {
				return apperr.New(apperr.Conflict, "the customer is already archived")
			}
			action, next.ArchivedAt = "customer.archived", &t.Now
		} else {
			if c.ArchivedAt == nil {
				return apperr.New(apperr.Conflict, "the customer is not archived")
			}
			next.ArchivedAt = nil
		}
		if out, err = s.store.Update(ctx, t, &next, t.Now); err != nil {
			return err
		}
		return s.audit(ctx, t, action, "customer", id, map[string]any{"name": c.Name})
	})
	return out, err
}

// Import adds up to MaxImportRows customers in one transaction with a fixed
// number of statements (ADMIN or above), all or none. Every refused row is
// reported, with its index and field (input[17].email), as one error of the
// returned apperr.List: invalid fields, emails twice in the batch (the later
// rows) or already used in the organization, assignees who are not members.
func (s *Service) Import(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, ins []*CreateCustomerInput) ([]*Customer, error) {
	if len(ins) > MaxImportRows {
		return nil, apperr.Invalid("input", "an import takes at most %d customers", MaxImportRows)
	}
	if len(ins) == 0 {
		return nil, apperr.Invalid("input", "an import takes at least one customer")
	}
	var errs apperr.List
	rows := ins
	firstWith := map[string]int{}
	var emails []string
	var assignees []uuid.UUID
	for i := range rows {
		prefix := fmt.Sprintf("input[%d].", i)
		errs = append(errs, normalizeCreate(rows[i], prefix)...)
		if e := rows[i].Email; e != nil {
			if j, dup := firstWith[*e]; dup {
				errs = append(errs, &apperr.Error{Code: apperr.Conflict, Field: prefix + "email",
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
	var out []*Customer
	err := s.gate(ctx, actor, orgID, org.RoleAdmin, func(t *org.Tx) error {
		// Always both checks: the statements do not depend on the rows.
		used, err := s.store.ExistingEmails(ctx, t, orgID, emails)
		if err != nil {
			return fmt.Errorf("import: existing emails: %w", err)
		}
		members, err := s.store.Members(ctx, t, orgID, assignees)
		if err != nil {
			return fmt.Errorf("import: assignees: %w", err)
		}
		for i, in := range rows {
			if in.Email != nil && used[*in.Email] && firstWith[*in.Email] == i {
				errs = append(errs, inRow(i, errEmailTaken("email")))
			}
			if in.AssigneeID != nil && !members[*in.AssigneeID] {
				errs = append(errs, inRow(i, errAssignee("assigneeId")))
			}
		}
		if len(errs) > 0 {
			errs.Sort()
			return errs
		}
		if out, err = s.store.InsertMany(ctx, t, orgID, rows, actor.UserID, t.Now); err != nil {
			// A concurrent write took an email or a membership ended meanwhile.
			if db.IsViolation(err, db.UniqueViolation, emailKey) {
				return errEmailTaken(importRowField(err, rows))
			}
			return writeError(err, "input.")
		}
		return s.audit(ctx, t, "customer.imported", "customer", uuid.Nil, map[string]any{"count": len(out)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	var out *CustomerNote
	err = s.gate(ctx, actor, orgID, org.RoleMember, func(t *org.Tx) error {
		var err error
		out, err = s.store.InsertNote(ctx, t, orgID, customerID, actor.UserID, body, t.Now)
		if db.IsViolation(err, db.ForeignKeyViolation, customerFK) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("insert note: %w", err)
		}
		return s.audit(ctx, t, "customer_note.created", "customer_note", out.ID,
			map[string]any{"customerId": customerID, "length": utf8.RuneCountInString(body)})
	})
	return out, err
}

// UpdateNote replaces a note's body: its author only, whatever the role.
func (s *Service) UpdateNote(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, body string) (*CustomerNote, error) {
	body, err := noteBody(body)
	if err != nil {
		return nil, err
	}
	var out *CustomerNote
	err = s.gate(ctx, actor, orgID, org.RoleMember, func(t *org.Tx) error {
		n, err := s.lockedNote(ctx, t, orgID, id)
		if err != nil {
			return err
		}
		if n.AuthorID == nil || *n.AuthorID != actor.UserID {
			return apperr.New(apperr.Forbidden, "only the note's author may edit it")
		}
		if n.Body == body {
			out = n
			return nil
		}
		if out, err = s.store.UpdateNote(ctx, t, orgID, id, body, t.Now); err != nil {
			return fmt.Errorf("update note: %w", err)
		}
		return s.audit(ctx, t, "customer_note.updated", "customer_note", id,
			map[string]any{"customerId": n.CustomerID, "before": n.Body, "after": body})
	})
	return out, err
}

// DeleteNote deletes a note: its author, or an ADMIN or OWNER.
func (s *Service) DeleteNote(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) error {
	return s.gate(ctx, actor, orgID, org.RoleMember, func(t *org.Tx) error {
		n, err := s.lockedNote(ctx, t, orgID, id)
		if err != nil {
			return err
		}
		own := n.AuthorID != nil && *n.AuthorID == actor.UserID
		if !own && !t.Actor.Role.AtLeast(org.RoleAdmin) {
			return apperr.New(apperr.Forbidden, "only the note's author or an ADMIN may delete it")
		}
		if err := s.store.DeleteNote(ctx, t, orgID, id); err != nil {
			return fmt.Errorf("delete note: %w", err)
		}
		return s.audit(ctx, t, "customer_note.deleted", "customer_note", id,
			map[string]any{"customerId": n.CustomerID, "authorId": n.AuthorID, "body": n.Body})
	})
}

// --- helpers ---

func (s *Service) gate(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, role org.Role, fn func(t *org.Tx) error) error {
	return s.d.Gate.Run(ctx, actor.UserID, orgID, role, org.LockActor, fn)
}

func (s *Service) audit(ctx context.Context, t *org.Tx, action, targetType string, target uuid.UUID, meta map[string]any) error {
	var id string
	if target != uuid.Nil {
		id = target.String()
	}
	return s.d.Audit.Record(ctx, t, audit.Entry{OrganizationID: t.Actor.OrganizationID, ActorID: t.Actor.UserID,
		Action: action, TargetType: targetType, TargetID: id, Metadata: meta, At: t.Now})
}

// locked locks the customer and checks the expected version.
func (s *Service) locked(ctx context.Context, t *org.Tx, orgID, id uuid.UUID, expectedVersion *int) (*Customer, error) {
	c, err := s.store.ForUpdate(ctx, t, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("lock customer: %w", err)
	}
	if c == nil {
		return nil, errNotFound
	}
	if expectedVersion != nil && *expectedVersion != c.Version {
		return nil, &apperr.Error{Code: apperr.Conflict, Field: "expectedVersion",
			Message: fmt.Sprintf("the customer was changed meanwhile (version %d, expected %d): reload it", c.Version, *expectedVersion)}
	}
	return c, nil
}

func (s *Service) lockedNote(ctx context.Context, t *org.Tx, orgID, id uuid.UUID) (*CustomerNote, error) {
	n, err := s.store.NoteForUpdate(ctx, t, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("lock note: %w", err)
	}
	if n == nil {
		return nil, errNoteNotFound
	}
	return n, nil
}

func errEmailTaken(field string) *apperr.Error {
	return &apperr.Error{Code: apperr.Conflict, Field: field, Message: "another customer of this organization has this email"}
}

// errAssignee is the answer for an assignee who is not a member of the
// organization, whether the user exists elsewhere or not: NOT_FOUND, like the
// tenancy operations' foreign ids.
func errAssignee(field string) *apperr.Error {
	return &apperr.Error{Code: apperr.NotFound, Field: field, Message: "the assignee is not a member of this organization"}
}

// writeError maps the constraint violations a customer write can meet to
// field errors (prefix names the input: "" or "input.").
func writeError(err error, prefix string) error {
	switch {
	case db.IsViolation(err, db.UniqueViolation, emailKey):
		return errEmailTaken(prefix + "email")
	case db.IsViolation(err, db.ForeignKeyViolation, assigneeFK):
		return errAssignee(prefix + "assigneeId")
	}
	return fmt.Errorf("write customer: %w", err)
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
	if in.Email, err = email(in.Email); err != nil {
		check(err)
	}
	if in.Phone, err = phone(in.Phone); err != nil {
		check(err)
	}
	if in.Company, err = company(in.Company); err != nil {
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
		if p.Email.Value, err = email(p.Email.Value); err != nil {
			return err
		}
	}
	if p.Phone.Set {
		if p.Phone.Value, err = phone(p.Phone.Value); err != nil {
			return err
		}
	}
	if p.Company.Set {
		if p.Company.Value, err = company(p.Company.Value); err != nil {
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

// email normalizes an optional email like a user's; blank is none.
func email(v *string) (*string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil, nil
	}
	e, err := account.NormalizeEmail(*v)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// phone checks an optional phone number (docs/api.md, "Customers"): an optional
// leading +, then digits, spaces and ( ) . / -, 3 to 32 characters in all,
// at least 3 of them digits; blank is none.
func phone(v *string) (*string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil, nil
	}
	p := strings.TrimSpace(*v)
	bad := apperr.Invalid("phone", "a phone number is 3 to 32 digits, spaces and + ( ) . / - (a + only first), with at least 3 digits")
	if len(p) < 3 || len(p) > 32 {
		return nil, bad
	}
	digits := 0
	for i, r := range p {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0:
		case strings.ContainsRune(" ()./-", r):
		default:
			return nil, bad
		}
	}
	if digits < 3 {
		return nil, bad
	}
	return &p, nil
}

// company checks an optional company name like a name; blank is none.
func company(v *string) (*string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil, nil
	}
	c, err := validate.Name("company", *v, MaxCompanyLen)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

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

// diff returns the fields that differ between a and b, before and after.
func diff(a, b *Customer) (before, after map[string]any) {
	before, after = map[string]any{}, map[string]any{}
	sa, sb := snapshot(a), snapshot(b)
	for k, va := range sa {
		if fmt.Sprint(deref(va)) != fmt.Sprint(deref(sb[k])) {
			before[k], after[k] = va, sb[k]
		}
	}
	return before, after
}

func deref(v any) any {
	switch p := v.(type) {
	case *string:
		if p == nil {
			return "<nil>"
		}
		return "s:" + *p
	case *uuid.UUID:
		if p == nil {
			return "<nil>"
		}
		return p.String()
	}
	return v
}
