package customer_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"tenantgraph/internal/customer"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

// These tests check the customer invariants in PostgreSQL itself, with plain
// SQL and no service: whatever a service does (or forgets), the database
// refuses a customer or a note that points into another organization, and
// values that break the input rules (docs/api.md, "Customers").

// wantViolation is dbtest.WantViolation.
var wantViolation = dbtest.WantViolation

// newOrg commits an organization owned by owner, with members as MEMBERs.
func newOrg(t *testing.T, owner uuid.UUID, members ...uuid.UUID) uuid.UUID {
	t.Helper()
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	org := dbtest.NewOrgTx(t, tx)
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, owner)
	for _, m := range members {
		dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'MEMBER')`, org, m)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return org
}

// row is a customer as inserted by insert: Name "Test" and status LEAD unless set.
type row struct {
	name, status    *string
	email, phone    *string
	company         *string
	tags            []string
	assignee        *uuid.UUID
	version         *int
	rawTags         any // instead of tags: a value PostgreSQL reads as text[] (NULL elements, 2 dimensions)
	keepDefaultName bool
}

func str(s string) *string { return &s }

// insert adds r as a customer of org and returns its id.
func insert(org uuid.UUID, r row) (uuid.UUID, error) {
	if r.name == nil && !r.keepDefaultName {
		r.name = str("Test")
	}
	if r.status == nil {
		r.status = str("LEAD")
	}
	if r.version == nil {
		one := 1
		r.version = &one
	}
	var tags any = pq.Array(r.tags)
	if r.tags == nil {
		tags = pq.Array([]string{})
	}
	if r.rawTags != nil {
		tags = r.rawTags
	}
	id := uuid.New()
	_, err := database.DB.Exec(`
		INSERT INTO customers (organization_id, id, name, email, phone, company, tags, status, assignee_id, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8, $9, $10, now(), now())`,
		org, id, r.name, r.email, r.phone, r.company, tags, r.status, r.assignee, r.version)
	return id, err
}

func mustInsert(t *testing.T, org uuid.UUID, r row) uuid.UUID {
	t.Helper()
	id, err := insert(org, r)
	if err != nil {
		t.Fatalf("insert %+v: %v", r, err)
	}
	return id
}

func insertNote(org, cust uuid.UUID, body string) (uuid.UUID, error) {
	id := uuid.New()
	_, err := database.DB.Exec(`INSERT INTO customer_notes (organization_id, id, customer_id, body, created_at, updated_at)
		VALUES ($1, $2, $3, $4, now(), now())`, org, id, cust, body)
	return id, err
}

// TestDBCustomerAssigneeIsAMemberOfItsOrganization: the composite foreign key
// (organization_id, assignee_id) -> organization_members refuses an assignee
// who is a member of another organization only, however the row gets there.
func TestDBCustomerAssigneeIsAMemberOfItsOrganization(t *testing.T) {
	t.Parallel()
	ownerA, memberA, ownerB, memberB := dbtest.NewUser(t, database.DB), dbtest.NewUser(t, database.DB), dbtest.NewUser(t, database.DB), dbtest.NewUser(t, database.DB)
	orgA := newOrg(t, ownerA, memberA)
	orgB := newOrg(t, ownerB, memberB)
	const fk = "customers_assignee_fkey"

	_, err := insert(orgA, row{assignee: &memberB})
	wantViolation(t, err, "insert in A assigned to a member of B", "23503", fk)
	stranger := dbtest.NewUser(t, database.DB) // a user of no organization
	_, err = insert(orgA, row{assignee: &stranger})
	wantViolation(t, err, "insert in A assigned to a user of no organization", "23503", fk)
	ghost := uuid.New() // no user at all
	_, err = insert(orgA, row{assignee: &ghost})
	wantViolation(t, err, "insert in A assigned to no user", "23503", fk)

	c := mustInsert(t, orgA, row{assignee: &memberA})
	_, err = database.DB.Exec(`UPDATE customers SET assignee_id = $3 WHERE organization_id = $1 AND id = $2`, orgA, c, memberB)
	wantViolation(t, err, "reassign A's customer to a member of B", "23503", fk)
	// Moving the customer to B keeps its assignee, who is not a member of B.
	_, err = database.DB.Exec(`UPDATE customers SET organization_id = $3 WHERE organization_id = $1 AND id = $2`, orgA, c, orgB)
	wantViolation(t, err, "move A's customer (assigned to A's member) to B", "23503", fk)

	var got struct {
		Org      uuid.UUID `db:"organization_id"`
		Assignee uuid.UUID `db:"assignee_id"`
	}
	if err := database.DB.Get(&got, `SELECT organization_id, assignee_id FROM customers WHERE id = $1`, c); err != nil {
		t.Fatal(err)
	}
	if got.Org != orgA || got.Assignee != memberA {
		t.Errorf("customer after the refused writes: %+v, want org A assigned to A's member", got)
	}
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id IN ($1, $2)`, orgA, orgB); err != nil || n != 1 {
		t.Errorf("customers in A and B: %d (%v), want 1", n, err)
	}
}

// TestDBNoteBelongsToACustomerOfItsOrganization: the composite foreign key
// (organization_id, customer_id) -> customers refuses a note of A on B's
// customer, on insert and on update, and a customer with notes cannot move
// to another organization away from them.
func TestDBNoteBelongsToACustomerOfItsOrganization(t *testing.T) {
	t.Parallel()
	orgA, orgB := newOrg(t, dbtest.NewUser(t, database.DB)), newOrg(t, dbtest.NewUser(t, database.DB))
	cA, cB := mustInsert(t, orgA, row{}), mustInsert(t, orgB, row{})
	const fk = "customer_notes_customer_fkey"

	_, err := insertNote(orgA, cB, "on B's customer")
	wantViolation(t, err, "A's note on B's customer", "23503", fk)
	_, err = insertNote(orgA, uuid.New(), "on no customer")
	wantViolation(t, err, "A's note on no customer", "23503", fk)

	note, err := insertNote(orgA, cA, "on A's customer")
	if err != nil {
		t.Fatal(err)
	}
	_, err = database.DB.Exec(`UPDATE customer_notes SET customer_id = $3 WHERE organization_id = $1 AND id = $2`, orgA, note, cB)
	wantViolation(t, err, "point A's note at B's customer", "23503", fk)
	_, err = database.DB.Exec(`UPDATE customer_notes SET organization_id = $3 WHERE organization_id = $1 AND id = $2`, orgA, note, orgB)
	wantViolation(t, err, "move A's note to B (its customer stays in A)", "23503", fk)
	_, err = database.DB.Exec(`UPDATE customers SET organization_id = $3 WHERE organization_id = $1 AND id = $2`, orgA, cA, orgB)
	wantViolation(t, err, "move A's customer with a note to B", "23503", fk)

	var got struct {
		Org  uuid.UUID `db:"organization_id"`
		Cust uuid.UUID `db:"customer_id"`
	}
	if err := database.DB.Get(&got, `SELECT organization_id, customer_id FROM customer_notes WHERE id = $1`, note); err != nil {
		t.Fatal(err)
	}
	if got.Org != orgA || got.Cust != cA {
		t.Errorf("note after the refused writes: %+v, want A's note on A's customer", got)
	}
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM customer_notes WHERE organization_id IN ($1, $2)`, orgA, orgB); err != nil || n != 1 {
		t.Errorf("notes in A and B: %d (%v), want 1", n, err)
	}
}

// TestDBMembershipEndClearsAssigneeInItsOrganizationOnly: when a membership
// ends (the member leaves or is removed: the row is deleted), that
// organization's customers assigned to the member lose their assignee and
// nothing else but their version, which goes up by one (a client holding the
// old version gets CONFLICT); the same user's customers in another
// organization keep it, and their version.
func TestDBMembershipEndClearsAssigneeInItsOrganizationOnly(t *testing.T) {
	t.Parallel()
	u, other := dbtest.NewUser(t, database.DB), dbtest.NewUser(t, database.DB)
	orgA := newOrg(t, dbtest.NewUser(t, database.DB), u, other)
	orgB := newOrg(t, dbtest.NewUser(t, database.DB), u)
	a1 := mustInsert(t, orgA, row{name: str("A one"), email: str("one@a.test"), tags: []string{"vip"}, assignee: &u})
	a2 := mustInsert(t, orgA, row{name: str("A two"), assignee: &u})
	a3 := mustInsert(t, orgA, row{name: str("A three"), assignee: &other})
	b1 := mustInsert(t, orgB, row{name: str("B one"), assignee: &u})

	type state struct {
		ID       uuid.UUID `db:"id"`
		Org      uuid.UUID `db:"organization_id"`
		Name     string    `db:"name"`
		Email    string    `db:"email"`
		Tags     string    `db:"tags"`
		Assignee string    `db:"assignee_id"`
		Version  int       `db:"version"`
	}
	load := func() map[uuid.UUID]state {
		var rows []state
		if err := database.DB.Select(&rows, `SELECT id, organization_id, name, coalesce(email, '') AS email, tags::text AS tags,
			coalesce(assignee_id::text, '') AS assignee_id, version
			FROM customers WHERE organization_id IN ($1, $2)`, orgA, orgB); err != nil {
			t.Fatal(err)
		}
		out := map[uuid.UUID]state{}
		for _, r := range rows {
			out[r.ID] = r
		}
		return out
	}
	before := load()
	dbtest.Exec(t, database.DB, `DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, orgA, u)
	after := load()
	if len(after) != 4 {
		t.Fatalf("%d customers after the membership ended, want 4", len(after))
	}
	for id, b := range before {
		want := b
		if id == a1 || id == a2 {
			want.Assignee = ""
			want.Version++
		}
		if got := after[id]; got != want {
			t.Errorf("customer %s: got %+v, want %+v", b.Name, got, want)
		}
	}
	if after[b1].Assignee != u.String() || after[a3].Assignee != other.String() || before[a1].Assignee != u.String() {
		t.Errorf("assignments: B's %q, A's other %q, A's before %q", after[b1].Assignee, after[a3].Assignee, before[a1].Assignee)
	}
}

// TestDBCustomerConstraintsMirrorInputRules: every CHECK refuses what the
// service's rules refuse (docs/api.md, "Customers"; the limits are the service's
// constants), at the boundaries, and accepts the values the service stores.
func TestDBCustomerConstraintsMirrorInputRules(t *testing.T) {
	t.Parallel()
	org := newOrg(t, dbtest.NewUser(t, database.DB))
	tags := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("t%d", i)
		}
		return out
	}
	digits := func(n int) string { return strings.Repeat("5", n) }
	cases := []struct {
		what       string
		r          row
		code, cons string // "" when accepted
	}{
		// name: 1 to 200 characters, trimmed, no control characters
		{what: "name of 200 characters", r: row{name: str(strings.Repeat("n", customer.MaxNameLen))}},
		{what: "name of 200 two-byte characters", r: row{name: str(strings.Repeat("é", customer.MaxNameLen))}},
		{what: "name with inner spaces", r: row{name: str("Ada  Lovelace")}},
		{what: "name of 201 characters", r: row{name: str(strings.Repeat("n", customer.MaxNameLen+1))}, code: "23514", cons: "customers_name_check"},
		{what: "empty name", r: row{name: str("")}, code: "23514", cons: "customers_name_check"},
		{what: "name with a leading space", r: row{name: str(" Ada")}, code: "23514", cons: "customers_name_check"},
		{what: "name with a trailing space", r: row{name: str("Ada ")}, code: "23514", cons: "customers_name_check"},
		{what: "name with a tab", r: row{name: str("Ada\tLovelace")}, code: "23514", cons: "customers_name_check"},
		{what: "name with a newline", r: row{name: str("Ada\nLovelace")}, code: "23514", cons: "customers_name_check"},
		{what: "name with DEL", r: row{name: str("Ada\x7f")}, code: "23514", cons: "customers_name_check"},
		{what: "name with a C1 control", r: row{name: str("Ada\u0085")}, code: "23514", cons: "customers_name_check"},
		{what: "no name", r: row{keepDefaultName: true}, code: "23502"},
		// email: normalized (lower-case, trimmed), something@something, at most 254 bytes
		{what: "email", r: row{email: str("ada@example.test")}},
		{what: "email with upper case", r: row{email: str("Ada@example.test")}, code: "23514", cons: "customers_email_check"},
		{what: "email with a leading space", r: row{email: str(" ada2@example.test")}, code: "23514", cons: "customers_email_check"},
		{what: "email without @", r: row{email: str("ada.example.test")}, code: "23514", cons: "customers_email_check"},
		{what: "email without local part", r: row{email: str("@example.test")}, code: "23514", cons: "customers_email_check"},
		{what: "email without domain", r: row{email: str("ada@")}, code: "23514", cons: "customers_email_check"},
		{what: "email of 255 bytes", r: row{email: str("a@" + strings.Repeat("x", 248) + ".test")}, code: "23514", cons: "customers_email_check"},
		{what: "email of 254 bytes", r: row{email: str("a@" + strings.Repeat("x", 247) + ".test")}},
		{what: "email with a control character", r: row{email: str("a\x01b@example.test")}, code: "23514", cons: "customers_email_check"},
		// phone: an optional leading +, digits, spaces and ( ) . / -, 3 to 32 characters in all, at least 3 digits
		{what: "phone +41 44 668 18 00", r: row{phone: str("+41 44 668 18 00")}},
		{what: "phone (555) 010-2000", r: row{phone: str("(555) 010-2000")}},
		{what: "phone 555.010/20", r: row{phone: str("555.010/20")}},
		{what: "phone of 3 digits", r: row{phone: str("123")}},
		{what: "phone of 32 digits", r: row{phone: str(digits(32))}},
		{what: "phone of + and 31 digits (32 characters)", r: row{phone: str("+" + digits(31))}},
		{what: "phone of 33 digits", r: row{phone: str(digits(33))}, code: "23514", cons: "customers_phone_check"},
		{what: "phone of + and 32 digits (33 characters)", r: row{phone: str("+" + digits(32))}, code: "23514", cons: "customers_phone_check"},
		{what: "phone of 2 digits", r: row{phone: str("12")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with 2 digits among 6 characters", r: row{phone: str("+1 (2)")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with + inside", r: row{phone: str("12+345")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with two +", r: row{phone: str("++12345")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with letters", r: row{phone: str("call 12345")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with a leading space", r: row{phone: str(" 12345")}, code: "23514", cons: "customers_phone_check"},
		{what: "phone with a trailing space", r: row{phone: str("12345 ")}, code: "23514", cons: "customers_phone_check"},
		{what: "empty phone", r: row{phone: str("")}, code: "23514", cons: "customers_phone_check"},
		// company: like a name, optional
		{what: "company of 200 characters", r: row{company: str(strings.Repeat("c", customer.MaxCompanyLen))}},
		{what: "company of 201 characters", r: row{company: str(strings.Repeat("c", customer.MaxCompanyLen+1))}, code: "23514", cons: "customers_company_check"},
		{what: "empty company", r: row{company: str("")}, code: "23514", cons: "customers_company_check"},
		{what: "company with a trailing space", r: row{company: str("Navy ")}, code: "23514", cons: "customers_company_check"},
		{what: "company with a control character", r: row{company: str("Na\x1bvy")}, code: "23514", cons: "customers_company_check"},
		// tags: a set of 0 to 20 tags of 1 to 32 characters, lower-case, trimmed, no control characters
		{what: "no tags", r: row{tags: []string{}}},
		{what: "20 tags", r: row{tags: tags(customer.MaxTags)}},
		{what: "tag of 32 characters", r: row{tags: []string{strings.Repeat("t", customer.MaxTagLen)}}},
		{what: "tag of 32 two-byte characters", r: row{tags: []string{strings.Repeat("é", customer.MaxTagLen)}}},
		{what: "tag with an inner space", r: row{tags: []string{"key account"}}},
		{what: "21 tags", r: row{tags: tags(customer.MaxTags + 1)}, code: "23514", cons: "customers_tags_check"},
		{what: "tag of 33 characters", r: row{tags: []string{strings.Repeat("t", customer.MaxTagLen+1)}}, code: "23514", cons: "customers_tags_check"},
		{what: "empty tag", r: row{tags: []string{"a", ""}}, code: "23514", cons: "customers_tags_check"},
		{what: "upper-case tag", r: row{tags: []string{"VIP"}}, code: "23514", cons: "customers_tags_check"},
		{what: "tag with a leading space", r: row{tags: []string{" vip"}}, code: "23514", cons: "customers_tags_check"},
		{what: "tag with a control character", r: row{tags: []string{"v\tip"}}, code: "23514", cons: "customers_tags_check"},
		{what: "tag twice", r: row{tags: []string{"vip", "b2b", "vip"}}, code: "23514", cons: "customers_tags_check"},
		{what: "NULL tag", r: row{rawTags: "{vip,NULL}"}, code: "23514", cons: "customers_tags_check"},
		{what: "two-dimensional tags", r: row{rawTags: "{{a,b},{c,d}}"}, code: "23514", cons: "customers_tags_check"},
		{what: "NULL tags", r: row{rawTags: pq.StringArray(nil)}, code: "23502"},
		// status
		{what: "status ACTIVE", r: row{status: str("ACTIVE")}},
		{what: "status INACTIVE", r: row{status: str("INACTIVE")}},
		{what: "status lead", r: row{status: str("lead")}, code: "23514", cons: "customers_status_check"},
		{what: "status ARCHIVED", r: row{status: str("ARCHIVED")}, code: "23514", cons: "customers_status_check"},
		// version
		{what: "version 0", r: row{version: new(int)}, code: "23514", cons: "customers_version_check"},
	}
	accepted := 0
	for _, c := range cases {
		_, err := insert(org, c.r)
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.what, err)
			}
			accepted++
			continue
		}
		wantViolation(t, err, c.what, c.code, c.cons)
	}
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id = $1`, org); err != nil || n != accepted {
		t.Errorf("%d customers stored (%v), want the %d accepted", n, err, accepted)
	}
}

// TestDBCustomerEmailUniquePerOrganization: one customer per email and
// organization, case-insensitively (the CHECK keeps emails lower-case, and
// the unique index is on lower(email) even without it); the same email in
// another organization is fine; customers without an email are many.
func TestDBCustomerEmailUniquePerOrganization(t *testing.T) {
	t.Parallel()
	orgA, orgB := newOrg(t, dbtest.NewUser(t, database.DB)), newOrg(t, dbtest.NewUser(t, database.DB))
	const key = "customers_org_email_key"
	mustInsert(t, orgA, row{email: str("dup@example.test")})
	_, err := insert(orgA, row{email: str("dup@example.test")})
	wantViolation(t, err, "the same email twice in A", "23505", key)
	mustInsert(t, orgB, row{email: str("dup@example.test")})
	mustInsert(t, orgA, row{})
	mustInsert(t, orgA, row{})

	// Without the lower-case CHECK, the index alone still refuses another case.
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	dbtest.Exec(t, tx, `ALTER TABLE customers DROP CONSTRAINT customers_email_check`)
	_, err = tx.Exec(`INSERT INTO customers (organization_id, name, email, created_at, updated_at) VALUES ($1, 'Upper', 'DUP@Example.TEST', now(), now())`, orgA)
	wantViolation(t, err, "DUP@Example.TEST in A (CHECK dropped)", "23505", key)
}

// TestDBNoteBodyRules: a note's body is 1 to 10,000 characters and not blank.
func TestDBNoteBodyRules(t *testing.T) {
	t.Parallel()
	org := newOrg(t, dbtest.NewUser(t, database.DB))
	c := mustInsert(t, org, row{})
	for _, tc := range []struct {
		what, body string
		ok         bool
	}{
		{"one character", "x", true},
		{"10,000 characters", strings.Repeat("b", customer.MaxNoteLen), true},
		{"10,000 two-byte characters", strings.Repeat("é", customer.MaxNoteLen), true},
		{"lines", "first line\nsecond line", true},
		{"10,001 characters", strings.Repeat("b", customer.MaxNoteLen+1), false},
		{"empty", "", false},
		{"blank", " \t\r\n ", false},
	} {
		_, err := insertNote(org, c, tc.body)
		if tc.ok {
			if err != nil {
				t.Errorf("note body %s: refused: %v", tc.what, err)
			}
			continue
		}
		wantViolation(t, err, "note body "+tc.what, "23514", "customer_notes_body_check")
	}
}

// TestDBCustomerVersionGoesUpOnEveryChange: an update that changes a customer
// but not its version (one no service made) gets version + 1; the service's own
// bump is not doubled; an update that changes nothing keeps the version; and
// the version never goes down.
func TestDBCustomerVersionGoesUpOnEveryChange(t *testing.T) {
	t.Parallel()
	org := newOrg(t, dbtest.NewUser(t, database.DB))
	id := mustInsert(t, org, row{name: str("Versioned")})
	version := func() int {
		var v int
		if err := database.DB.Get(&v, `SELECT version FROM customers WHERE organization_id = $1 AND id = $2`, org, id); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0 := version()
	dbtest.Exec(t, database.DB, `UPDATE customers SET name = 'Renamed' WHERE organization_id = $1 AND id = $2`, org, id)
	if got := version(); got != v0+1 {
		t.Errorf("after a change without a version: version %d, want %d", got, v0+1)
	}
	dbtest.Exec(t, database.DB, `UPDATE customers SET name = 'Again', version = version + 1 WHERE organization_id = $1 AND id = $2`, org, id)
	if got := version(); got != v0+2 {
		t.Errorf("after a change that bumps the version itself: version %d, want %d", got, v0+2)
	}
	dbtest.Exec(t, database.DB, `UPDATE customers SET name = name WHERE organization_id = $1 AND id = $2`, org, id)
	if got := version(); got != v0+2 {
		t.Errorf("after an update that changes nothing: version %d, want %d", got, v0+2)
	}
	_, err := database.DB.Exec(`UPDATE customers SET version = 1 WHERE organization_id = $1 AND id = $2`, org, id)
	if !db.IsViolation(err, db.CheckViolation, "customers_version_check") {
		t.Errorf("lowering the version: %v, want a check violation", err)
	}
}

// TestDBCustomerQuotas: active customers never pass the organization's limit,
// whether inserted one by one or many in one statement (refused whole), or
// restored; archiving frees a slot; the notes of one customer never pass
// theirs.
func TestDBCustomerQuotas(t *testing.T) {
	t.Parallel()
	orgA, orgB := newOrg(t, dbtest.NewUser(t, database.DB)), newOrg(t, dbtest.NewUser(t, database.DB))
	dbtest.Exec(t, database.DB, `UPDATE organization_limits SET customers = 2, notes_per_customer = 1 WHERE organization_id = $1`, orgA)
	insert := func(names ...string) error {
		_, err := database.DB.Exec(`INSERT INTO customers (organization_id, name, created_at, updated_at)
			SELECT $1, n, now(), now() FROM unnest($2::text[]) n`, orgA, pq.Array(names))
		return err
	}
	quota := func(err error, what, detail string) {
		t.Helper()
		var pe *pq.Error
		if !errors.As(err, &pe) || pe.Code != "23514" || pe.Constraint != "organization_quota" || pe.Detail != detail {
			t.Fatalf("%s: %v, want the organization_quota violation %q", what, err, detail)
		}
	}
	count := func() (rows, used int) {
		t.Helper()
		if err := database.DB.QueryRow(`SELECT (SELECT count(*) FROM customers WHERE organization_id = $1 AND archived_at IS NULL),
			(SELECT used FROM organization_usage WHERE organization_id = $1 AND quota = 'customers')`, orgA).Scan(&rows, &used); err != nil {
			t.Fatal(err)
		}
		return rows, used
	}
	if err := insert("One"); err != nil {
		t.Fatal(err)
	}
	quota(insert("Two", "Three"), "two in one statement with one slot left", "customers 2")
	if err := insert("Two"); err != nil {
		t.Fatal(err)
	}
	quota(insert("Three"), "a third", "customers 2")
	var one uuid.UUID
	if err := database.DB.Get(&one, `UPDATE customers SET archived_at = now() WHERE organization_id = $1 AND name = 'One' RETURNING id`, orgA); err != nil {
		t.Fatal(err)
	}
	if err := insert("Three"); err != nil {
		t.Fatalf("a third once one is archived: %v", err)
	}
	_, err := database.DB.Exec(`UPDATE customers SET archived_at = NULL WHERE organization_id = $1 AND id = $2`, orgA, one)
	quota(err, "restoring a third", "customers 2")
	if rows, used := count(); rows != 2 || used != 2 {
		t.Fatalf("%d active customers, %d counted; want 2 and 2", rows, used)
	}
	// Another organization's customers count for it alone.
	if _, err := database.DB.Exec(`INSERT INTO customers (organization_id, name, created_at, updated_at) VALUES ($1, 'B1', now(), now()), ($1, 'B2', now(), now()), ($1, 'B3', now(), now())`, orgB); err != nil {
		t.Fatalf("customers of another organization: %v", err)
	}

	note := func() error {
		_, err := insertNote(orgA, one, "hello")
		return err
	}
	if err := note(); err != nil {
		t.Fatal(err)
	}
	quota(note(), "a second note", "notesPerCustomer 1")
}
