package customer_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
)

const customerFields = `id name email phone company tags status version archivedAt
	assignee { id } createdBy { id }`

type customerOut struct {
	ID         uuid.UUID
	Name       string
	Email      *string
	Phone      *string
	Company    *string
	Tags       []string
	Status     string
	Version    int
	ArchivedAt *string
	Assignee   *struct{ ID uuid.UUID }
	CreatedBy  *struct{ ID uuid.UUID }
}

// crmOrg is an organization with an OWNER, an ADMIN and two MEMBERs.
type crmOrg struct {
	org                  uuid.UUID
	owner, admin, m1, m2 *Session
}

func newCRMOrg(t *testing.T, tag string) *crmOrg {
	t.Helper()
	o := &crmOrg{owner: srv.RegisterVerified(t, tag+"-owner")}
	o.org = srv.CreateOrg(t, o.owner, tag+" "+uuid.NewString()[:8])
	o.admin = srv.AddMember(t, o.owner, o.org, "ADMIN", tag+"-admin")
	o.m1 = srv.AddMember(t, o.owner, o.org, "MEMBER", tag+"-m1")
	o.m2 = srv.AddMember(t, o.owner, o.org, "MEMBER", tag+"-m2")
	return o
}

func createCustomer(t *testing.T, s *Session, org uuid.UUID, in map[string]any) customerOut {
	t.Helper()
	r := MustOK(t, srv.Post(t, s.AccessToken, `mutation($o: ID!, $in: CreateCustomerInput!) {
		createCustomer(orgId: $o, input: $in) { `+customerFields+` } }`, map[string]any{"o": org, "in": in}))
	var out struct{ CreateCustomer customerOut }
	r.Decode(t, &out)
	return out.CreateCustomer
}

func getCustomer(t *testing.T, s *Session, org, id uuid.UUID) customerOut {
	t.Helper()
	r := MustOK(t, srv.Post(t, s.AccessToken, `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) { `+customerFields+` } }`,
		map[string]any{"o": org, "id": id}))
	var out struct{ Customer customerOut }
	r.Decode(t, &out)
	return out.Customer
}

type customerPage struct {
	Names      []string
	TotalCount int
	HasNext    bool
	EndCursor  *string
}

func listCustomers(t *testing.T, s *Session, org uuid.UUID, args string, vars map[string]any) customerPage {
	t.Helper()
	if vars == nil {
		vars = map[string]any{}
	}
	vars["o"] = org
	r := MustOK(t, srv.Post(t, s.AccessToken, `query($o: ID!, $after: String) { customers(orgId: $o, after: $after`+args+`) {
		totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }`, vars))
	var out struct {
		Customers struct {
			TotalCount int
			PageInfo   struct {
				HasNextPage bool
				EndCursor   *string
			}
			Edges []struct{ Node struct{ Name string } }
		}
	}
	r.Decode(t, &out)
	p := customerPage{TotalCount: out.Customers.TotalCount, HasNext: out.Customers.PageInfo.HasNextPage, EndCursor: out.Customers.PageInfo.EndCursor}
	for _, e := range out.Customers.Edges {
		p.Names = append(p.Names, e.Node.Name)
	}
	return p
}

func customerCount(t *testing.T, org uuid.UUID) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	return n
}

func auditCount(t *testing.T, org uuid.UUID, action string) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = $2`, org, action); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCustomersCreateSearchFilterOrderPaginate(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-list")
	other := newCRMOrg(t, "crm-other")
	createCustomer(t, other.owner, other.org, map[string]any{"name": "Ada Other", "email": "ada@example.com"})

	ada := createCustomer(t, o.m1, o.org, map[string]any{"name": "  Ada Lovelace ", "email": " ADA@Example.com",
		"phone": "+44 20 7946 0000", "company": "Analytical Engines", "tags": []string{"VIP", "vip", " math "},
		"status": "ACTIVE", "assigneeId": o.m2.UserID})
	if ada.Name != "Ada Lovelace" || *ada.Email != "ada@example.com" || *ada.Phone != "+44 20 7946 0000" ||
		fmt.Sprint(ada.Tags) != "[vip math]" || ada.Status != "ACTIVE" || ada.Version != 1 ||
		ada.Assignee.ID != o.m2.UserID || ada.CreatedBy.ID != o.m1.UserID {
		t.Fatalf("created = %+v", ada)
	}
	createCustomer(t, o.m2, o.org, map[string]any{"name": "bob_builder", "company": "100% Concrete"})
	createCustomer(t, o.m2, o.org, map[string]any{"name": "Charles Babbage", "email": "charles@engines.test", "tags": []string{"math"}})
	createCustomer(t, o.m2, o.org, map[string]any{"name": "dora", "status": "INACTIVE", "assigneeId": o.m2.UserID})
	if n := auditCount(t, o.org, "customer.created"); n != 4 {
		t.Errorf("%d customer.created events, want 4", n)
	}

	for _, c := range []struct {
		args string
		vars map[string]any
		want string
	}{
		{"", nil, "[Ada Lovelace bob_builder Charles Babbage dora]"},
		{`, orderBy: {field: NAME, direction: DESC}`, nil, "[dora Charles Babbage bob_builder Ada Lovelace]"},
		{`, orderBy: {field: CREATED_AT, direction: ASC}`, nil, "[Ada Lovelace bob_builder Charles Babbage dora]"},
		{`, search: "ENGINE"`, nil, "[Ada Lovelace Charles Babbage]"}, // company, email
		{`, search: "lovel"`, nil, "[Ada Lovelace]"},
		{`, search: "100%"`, nil, "[bob_builder]"}, // % is literal
		{`, search: "bo_"`, nil, "[]"},             // _ is literal
		{`, search: "_"`, nil, "[bob_builder]"},
		{`, status: INACTIVE`, nil, "[dora]"},
		{`, tag: " MATH"`, nil, "[Ada Lovelace Charles Babbage]"},
		{`, assigneeId: "` + o.m2.UserID.String() + `"`, nil, "[Ada Lovelace dora]"},
		{`, status: ACTIVE, tag: "math"`, nil, "[Ada Lovelace]"},
	} {
		p := listCustomers(t, o.m1, o.org, c.args, c.vars)
		if got := fmt.Sprint(p.Names); got != c.want && !(c.want == "[]" && p.Names == nil) {
			t.Errorf("customers(%s) = %s, want %s", c.args, got, c.want)
		}
		if p.TotalCount != len(p.Names) {
			t.Errorf("customers(%s): totalCount %d, %d listed", c.args, p.TotalCount, len(p.Names))
		}
	}

	// Pages of 3 then 1, in each ordering and direction; the cursor of one ordering is refused in another.
	for _, order := range []string{"NAME", "CREATED_AT", "UPDATED_AT"} {
		for _, dir := range []string{"ASC", "DESC"} {
			args := fmt.Sprintf(`, first: 3, orderBy: {field: %s, direction: %s}`, order, dir)
			p1 := listCustomers(t, o.m1, o.org, args, nil)
			p2 := listCustomers(t, o.m1, o.org, args, map[string]any{"after": *p1.EndCursor})
			all := listCustomers(t, o.m1, o.org, fmt.Sprintf(`, orderBy: {field: %s, direction: %s}`, order, dir), nil)
			if !p1.HasNext || p2.HasNext || len(p1.Names) != 3 || len(p2.Names) != 1 ||
				fmt.Sprint(append(p1.Names, p2.Names...)) != fmt.Sprint(all.Names) || p1.TotalCount != 4 {
				t.Errorf("%s %s: pages %v + %v, want %v", order, dir, p1.Names, p2.Names, all.Names)
			}
		}
	}
	p := listCustomers(t, o.m1, o.org, `, first: 1`, nil)
	r := srv.Post(t, o.m1.AccessToken, `query($o: ID!, $a: String) { customers(orgId: $o, after: $a, orderBy: {field: CREATED_AT}) { totalCount } }`,
		map[string]any{"o": o.org, "a": *p.EndCursor})
	if r.Code() != "BAD_USER_INPUT" || r.Field() != "after" {
		t.Errorf("a NAME cursor in a CREATED_AT list: %s", r.Raw)
	}

	// An outsider's organization is not visible; a member of another organization gets NOT_FOUND.
	r = srv.Post(t, other.owner.AccessToken, `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) { id } }`,
		map[string]any{"o": o.org, "id": ada.ID})
	if r.Code() != "NOT_FOUND" {
		t.Errorf("outsider reads a customer: %s", r.Raw)
	}
	r = srv.Post(t, other.owner.AccessToken, `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) { id } }`,
		map[string]any{"o": other.org, "id": ada.ID})
	if r.Code() != "NOT_FOUND" {
		t.Errorf("another organization's customer id: %s", r.Raw)
	}
}

func TestCustomerValidationChangesNothing(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-valid")
	outsider := srv.RegisterVerified(t, "crm-valid-outsider")
	createCustomer(t, o.m1, o.org, map[string]any{"name": "Taken", "email": "taken@example.com"})
	tags := make([]string, 21)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%d", i)
	}
	for _, c := range []struct {
		in          map[string]any
		code, field string
	}{
		{map[string]any{"name": "   "}, "BAD_USER_INPUT", "name"},
		{map[string]any{"name": strings.Repeat("x", 201)}, "BAD_USER_INPUT", "name"},
		{map[string]any{"name": "Tab\tName"}, "BAD_USER_INPUT", "name"},
		{map[string]any{"name": "A", "email": "not-an-email"}, "BAD_USER_INPUT", "email"},
		{map[string]any{"name": "A", "phone": "call me"}, "BAD_USER_INPUT", "phone"},
		{map[string]any{"name": "A", "phone": "+1 (2)"}, "BAD_USER_INPUT", "phone"},
		{map[string]any{"name": "A", "phone": "12+345"}, "BAD_USER_INPUT", "phone"},
		{map[string]any{"name": "A", "company": strings.Repeat("c", 201)}, "BAD_USER_INPUT", "company"},
		{map[string]any{"name": "A", "tags": tags}, "BAD_USER_INPUT", "tags"},
		{map[string]any{"name": "A", "tags": []string{strings.Repeat("t", 33)}}, "BAD_USER_INPUT", "tags"},
		{map[string]any{"name": "A", "email": "TAKEN@example.com"}, "CONFLICT", "email"},
		{map[string]any{"name": "A", "assigneeId": outsider.UserID}, "NOT_FOUND", "assigneeId"},
		{map[string]any{"name": "A", "assigneeId": uuid.New()}, "NOT_FOUND", "assigneeId"},
	} {
		before := customerCount(t, o.org)
		r := srv.Post(t, o.m1.AccessToken, `mutation($o: ID!, $in: CreateCustomerInput!) { createCustomer(orgId: $o, input: $in) { id } }`,
			map[string]any{"o": o.org, "in": c.in})
		if r.Code() != c.code || r.Field() != c.field {
			t.Errorf("create %v: got %s/%s, want %s/%s: %s", c.in, r.Code(), r.Field(), c.code, c.field, r.Raw)
		}
		if after := customerCount(t, o.org); after != before {
			t.Errorf("create %v changed the customers: %d -> %d", c.in, before, after)
		}
	}
	if n := auditCount(t, o.org, "customer.created"); n != 1 {
		t.Errorf("%d customer.created events, want 1", n)
	}
}

const updateCustomerMutation = `mutation($o: ID!, $id: ID!, $in: UpdateCustomerInput!, $v: Int) {
	updateCustomer(orgId: $o, id: $id, input: $in, expectedVersion: $v) { ` + customerFields + ` } }`

func TestUpdateCustomerVersionsAndClears(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-update")
	c := createCustomer(t, o.m1, o.org, map[string]any{"name": "Grace", "email": "grace@example.com", "phone": "555 0100",
		"company": "Navy", "tags": []string{"a"}, "assigneeId": o.m1.UserID})

	// Fields given change; an explicit null clears; absent ones stay.
	r := MustOK(t, srv.Post(t, o.m2.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID, "v": 1,
		"in": map[string]any{"name": "Grace Hopper", "phone": nil, "assigneeId": nil, "tags": []string{"B", "c"}, "status": "ACTIVE"}}))
	var out struct{ UpdateCustomer customerOut }
	r.Decode(t, &out)
	u := out.UpdateCustomer
	if u.Name != "Grace Hopper" || u.Phone != nil || u.Assignee != nil || *u.Email != "grace@example.com" ||
		*u.Company != "Navy" || fmt.Sprint(u.Tags) != "[b c]" || u.Status != "ACTIVE" || u.Version != 2 {
		t.Fatalf("updated = %+v", u)
	}
	var meta string
	if err := srv.DB.Get(&meta, `SELECT metadata::text FROM audit_events WHERE organization_id = $1 AND action = 'customer.updated'`, o.org); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"before": {"name": "Grace"`, `"phone": "555 0100"`, `"after": {"name": "Grace Hopper"`, `"phone": null`} {
		if !strings.Contains(meta, want) {
			t.Errorf("customer.updated metadata %s lacks %s", meta, want)
		}
	}
	if strings.Contains(meta, "grace@example.com") {
		t.Errorf("customer.updated metadata %s holds an unchanged field", meta)
	}

	// A stale version: CONFLICT, nothing changes.
	r = srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID, "v": 1,
		"in": map[string]any{"name": "Stale"}})
	if r.Code() != "CONFLICT" || r.Field() != "expectedVersion" {
		t.Fatalf("stale update: %s", r.Raw)
	}
	if g := getCustomer(t, o.m1, o.org, c.ID); g.Name != "Grace Hopper" || g.Version != 2 {
		t.Fatalf("after a stale update: %+v", g)
	}
	// Without a version the update applies; one that changes nothing keeps the version.
	MustOK(t, srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID,
		"in": map[string]any{"company": ""}}))
	MustOK(t, srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID,
		"in": map[string]any{"name": "Grace Hopper"}}))
	if g := getCustomer(t, o.m1, o.org, c.ID); g.Company != nil || g.Version != 3 {
		t.Fatalf("after clearing the company: %+v", g)
	}
	if n := auditCount(t, o.org, "customer.updated"); n != 2 {
		t.Errorf("%d customer.updated events, want 2", n)
	}
	// Bad input and another organization's id change nothing.
	other := newCRMOrg(t, "crm-update-other")
	for _, c2 := range []struct {
		vars        map[string]any
		code, field string
	}{
		{map[string]any{"o": o.org, "id": c.ID, "in": map[string]any{"email": "nope"}}, "BAD_USER_INPUT", "email"},
		{map[string]any{"o": o.org, "id": c.ID, "in": map[string]any{"assigneeId": other.m1.UserID}}, "NOT_FOUND", "assigneeId"},
		{map[string]any{"o": o.org, "id": uuid.New(), "in": map[string]any{"name": "X"}}, "NOT_FOUND", ""},
	} {
		r := srv.Post(t, o.m1.AccessToken, updateCustomerMutation, c2.vars)
		if r.Code() != c2.code || r.Field() != c2.field {
			t.Errorf("update %v: %s", c2.vars, r.Raw)
		}
	}
	if g := getCustomer(t, o.m1, o.org, c.ID); g.Version != 3 {
		t.Fatalf("refused updates changed the customer: %+v", g)
	}
}

func TestArchiveRestoreCustomer(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-archive")
	c := createCustomer(t, o.m1, o.org, map[string]any{"name": "Archived"})
	createCustomer(t, o.m1, o.org, map[string]any{"name": "Kept"})
	archive := `mutation($o: ID!, $id: ID!) { archiveCustomer(orgId: $o, id: $id) { archivedAt version } }`
	restore := `mutation($o: ID!, $id: ID!) { restoreCustomer(orgId: $o, id: $id) { archivedAt version } }`
	vars := map[string]any{"o": o.org, "id": c.ID}
	if r := srv.Post(t, o.m1.AccessToken, archive, vars); r.Code() != "FORBIDDEN" {
		t.Fatalf("MEMBER archives: %s", r.Raw)
	}
	MustOK(t, srv.Post(t, o.admin.AccessToken, archive, vars))
	if p := listCustomers(t, o.m1, o.org, "", nil); fmt.Sprint(p.Names) != "[Kept]" || p.TotalCount != 1 {
		t.Errorf("default list after archiving: %+v", p)
	}
	if p := listCustomers(t, o.m1, o.org, ", includeArchived: true", nil); fmt.Sprint(p.Names) != "[Archived Kept]" {
		t.Errorf("includeArchived: %+v", p)
	}
	if g := getCustomer(t, o.m1, o.org, c.ID); g.ArchivedAt == nil || g.Version != 2 {
		t.Errorf("archived customer: %+v", g)
	}
	if r := srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID, "in": map[string]any{"name": "X"}}); r.Code() != "CONFLICT" {
		t.Errorf("update of an archived customer: %s", r.Raw)
	}
	if r := srv.Post(t, o.admin.AccessToken, archive, vars); r.Code() != "CONFLICT" {
		t.Errorf("archiving twice: %s", r.Raw)
	}
	if r := srv.Post(t, o.m1.AccessToken, restore, vars); r.Code() != "FORBIDDEN" {
		t.Errorf("MEMBER restores: %s", r.Raw)
	}
	MustOK(t, srv.Post(t, o.owner.AccessToken, restore, vars))
	if g := getCustomer(t, o.m1, o.org, c.ID); g.ArchivedAt != nil || g.Version != 3 {
		t.Errorf("restored customer: %+v", g)
	}
	if p := listCustomers(t, o.m1, o.org, "", nil); p.TotalCount != 2 {
		t.Errorf("default list after restoring: %+v", p)
	}
	if auditCount(t, o.org, "customer.archived") != 1 || auditCount(t, o.org, "customer.restored") != 1 {
		t.Error("want one customer.archived and one customer.restored event")
	}
}

func TestCustomerNotes(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-notes")
	c := createCustomer(t, o.m1, o.org, map[string]any{"name": "Noted"})
	add := `mutation($o: ID!, $c: ID!, $b: String!) { addCustomerNote(orgId: $o, customerId: $c, body: $b) { id body author { id } } }`
	edit := `mutation($o: ID!, $id: ID!, $b: String!) { updateCustomerNote(orgId: $o, id: $id, body: $b) { body } }`
	del := `mutation($o: ID!, $id: ID!) { deleteCustomerNote(orgId: $o, id: $id) }`
	addNote := func(s *Session, body string) uuid.UUID {
		r := MustOK(t, srv.Post(t, s.AccessToken, add, map[string]any{"o": o.org, "c": c.ID, "b": body}))
		var out struct {
			AddCustomerNote struct {
				ID     uuid.UUID
				Body   string
				Author struct{ ID uuid.UUID }
			}
		}
		r.Decode(t, &out)
		if out.AddCustomerNote.Author.ID != s.UserID || out.AddCustomerNote.Body != strings.TrimSpace(body) {
			t.Fatalf("note = %+v", out.AddCustomerNote)
		}
		return out.AddCustomerNote.ID
	}
	n1 := addNote(o.m1, " first call ")
	n2 := addNote(o.m2, "second")
	for _, bad := range []string{"  ", strings.Repeat("x", 10_001)} {
		if r := srv.Post(t, o.m1.AccessToken, add, map[string]any{"o": o.org, "c": c.ID, "b": bad}); r.Code() != "BAD_USER_INPUT" || r.Field() != "body" {
			t.Errorf("note of %d characters: %s", len(bad), r.Raw)
		}
	}
	if r := srv.Post(t, o.m1.AccessToken, add, map[string]any{"o": o.org, "c": uuid.New(), "b": "x"}); r.Code() != "NOT_FOUND" {
		t.Errorf("note on an unknown customer: %s", r.Raw)
	}
	// Editing is the author's only, whatever the role; deleting the author's or an ADMIN's.
	for _, s := range []*Session{o.m2, o.admin, o.owner} {
		if r := srv.Post(t, s.AccessToken, edit, map[string]any{"o": o.org, "id": n1, "b": "hijacked"}); r.Code() != "FORBIDDEN" {
			t.Errorf("edit of another's note: %s", r.Raw)
		}
	}
	if r := srv.Post(t, o.m1.AccessToken, del, map[string]any{"o": o.org, "id": n2}); r.Code() != "FORBIDDEN" {
		t.Errorf("MEMBER deletes another's note: %s", r.Raw)
	}
	MustOK(t, srv.Post(t, o.m1.AccessToken, edit, map[string]any{"o": o.org, "id": n1, "b": "first call, edited"}))
	MustOK(t, srv.Post(t, o.admin.AccessToken, del, map[string]any{"o": o.org, "id": n2}))
	n3 := addNote(o.m2, "third")
	MustOK(t, srv.Post(t, o.m2.AccessToken, del, map[string]any{"o": o.org, "id": n3}))

	r := MustOK(t, srv.Post(t, o.m2.AccessToken, `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) {
		notes(first: 10) { totalCount edges { node { body author { id } } } } } }`, map[string]any{"o": o.org, "id": c.ID}))
	var out struct {
		Customer struct {
			Notes struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Body   string
						Author struct{ ID uuid.UUID }
					}
				}
			}
		}
	}
	r.Decode(t, &out)
	if n := out.Customer.Notes; n.TotalCount != 1 || len(n.Edges) != 1 || n.Edges[0].Node.Body != "first call, edited" || n.Edges[0].Node.Author.ID != o.m1.UserID {
		t.Errorf("notes = %+v", n)
	}
	for action, want := range map[string]int{"customer_note.created": 3, "customer_note.updated": 1, "customer_note.deleted": 2} {
		if n := auditCount(t, o.org, action); n != want {
			t.Errorf("%d %s events, want %d", n, action, want)
		}
	}
}

func TestAssigneeClearedWhenMemberLeaves(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-assignee")
	c := createCustomer(t, o.m1, o.org, map[string]any{"name": "Assigned", "assigneeId": o.m2.UserID})
	d := createCustomer(t, o.m1, o.org, map[string]any{"name": "Mine", "assigneeId": o.m1.UserID})
	MustOK(t, srv.Post(t, o.admin.AccessToken, `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
		map[string]any{"o": o.org, "u": o.m2.UserID}))
	MustOK(t, srv.Post(t, o.m1.AccessToken, `mutation($o: ID!) { leaveOrganization(orgId: $o) }`, map[string]any{"o": o.org}))
	// The assignee is cleared, and that is a change: the version goes up
	// (migration 00010), so an editor holding version 1 gets CONFLICT.
	for _, id := range []uuid.UUID{c.ID, d.ID} {
		g := getCustomer(t, o.admin, o.org, id)
		if g.Assignee != nil || g.Version != 2 {
			t.Errorf("customer %s after its assignee left: %+v", g.Name, g)
		}
	}
	r := srv.Post(t, o.admin.AccessToken, `mutation($o: ID!, $id: ID!) { updateCustomer(orgId: $o, id: $id, input: {name: "Stale"}, expectedVersion: 1) { id } }`,
		map[string]any{"o": o.org, "id": c.ID})
	if r.Code() != "CONFLICT" {
		t.Errorf("an update at the version before the assignee left: %s, want CONFLICT", r.Raw)
	}
	// The creator left: the customer stays, still credited.
	if g := getCustomer(t, o.admin, o.org, d.ID); g.CreatedBy == nil || g.CreatedBy.ID != o.m1.UserID {
		t.Errorf("createdBy after the creator left: %+v", g)
	}
}

const importMutation = `mutation($o: ID!, $in: [CreateCustomerInput!]!) { importCustomers(orgId: $o, input: $in) { id name } }`

func TestImportCustomers(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-import")
	outsider := srv.RegisterVerified(t, "crm-import-outsider")
	createCustomer(t, o.m1, o.org, map[string]any{"name": "Existing", "email": "existing@example.com"})

	rows := func(n int, prefix string) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"name": fmt.Sprintf("%s %04d", prefix, i), "email": fmt.Sprintf("%s%d@example.com", prefix, i),
				"tags": []string{"imported"}, "assigneeId": o.m1.UserID.String()}
		}
		return out
	}
	if r := srv.Post(t, o.m1.AccessToken, importMutation, map[string]any{"o": o.org, "in": rows(2, "m")}); r.Code() != "FORBIDDEN" {
		t.Fatalf("MEMBER imports: %s", r.Raw)
	}

	// Every refused row is reported with its index and field; nothing is inserted.
	bad := rows(6, "bad")
	bad[1]["email"] = "not-an-email"
	bad[2]["email"] = "EXISTING@example.com"
	bad[3]["email"] = "bad0@example.com" // the same as row 0
	bad[4]["assigneeId"] = outsider.UserID.String()
	bad[5]["name"] = " "
	bad[5]["phone"] = "x"
	before := customerCount(t, o.org)
	r := srv.Post(t, o.admin.AccessToken, importMutation, map[string]any{"o": o.org, "in": bad})
	var got []string
	for _, e := range r.Errors {
		got = append(got, fmt.Sprintf("%v %v", e.Extensions["field"], e.Extensions["code"]))
	}
	want := "[input[1].email BAD_USER_INPUT input[2].email CONFLICT input[3].email CONFLICT input[4].assigneeId NOT_FOUND input[5].name BAD_USER_INPUT input[5].phone BAD_USER_INPUT]"
	if fmt.Sprint(got) != want {
		t.Errorf("import errors = %v\nwant %s\n%s", got, want, r.Raw)
	}
	if after := customerCount(t, o.org); after != before || auditCount(t, o.org, "customer.imported") != 0 {
		t.Errorf("a refused import changed the customers: %d -> %d", before, after)
	}

	// Over 1,000 rows the document's budget refuses the mutation before it runs
	// (graph.Limits.BulkRows; the service's own limit is the same).
	if r := srv.Post(t, o.admin.AccessToken, importMutation, map[string]any{"o": o.org, "in": rows(1001, "big")}); r.Code() != "BULK_LIMIT_EXCEEDED" {
		t.Errorf("1,001 rows: %.300s", r.Raw)
	}
	if after := customerCount(t, o.org); after != before {
		t.Errorf("a refused import changed the customers: %d -> %d", before, after)
	}

	// 2 rows and 1,000 rows cost the same statements.
	r2, small := srv.PostCounted(t, o.admin.AccessToken, importMutation, map[string]any{"o": o.org, "in": rows(2, "small")})
	MustOK(t, r2)
	r1000, large := srv.PostCounted(t, o.owner.AccessToken, importMutation, map[string]any{"o": o.org, "in": rows(1000, "large")})
	MustOK(t, r1000)
	var out struct {
		ImportCustomers []struct{ Name string }
	}
	r1000.Decode(t, &out)
	if len(out.ImportCustomers) != 1000 || out.ImportCustomers[999].Name != "large 0999" {
		t.Fatalf("imported %d customers", len(out.ImportCustomers))
	}
	t.Logf("importCustomers: %d statements for 2 rows, %d for 1,000", small, large)
	if small != large {
		t.Errorf("importCustomers: %d statements for 2 rows, %d for 1,000", small, large)
	}
	if n := customerCount(t, o.org); n != before+1002 {
		t.Errorf("%d customers after the imports, want %d", n, before+1002)
	}
	var meta string
	if err := srv.DB.Get(&meta, `SELECT string_agg(metadata->>'count', ',' ORDER BY seq) FROM audit_events WHERE organization_id = $1 AND action = 'customer.imported'`, o.org); err != nil || meta != "2,1000" {
		t.Errorf("customer.imported counts = %q (%v)", meta, err)
	}
	if p := listCustomers(t, o.m1, o.org, `, tag: "imported", first: 1`, nil); p.TotalCount != 1002 {
		t.Errorf("tag filter after the import: %+v", p)
	}
}

const customersPageQuery = `query($o: ID!, $n: Int) { customers(orgId: $o, first: $n) { edges { node {
	name assignee { email } createdBy { email }
	notes(first: 3) { edges { node { body author { email } } } } } } } }`

// TestCustomersPageCostsConstantStatements: a page of customers with assignee,
// creator and first notes with their authors costs the same statements for
// 5 customers as for 50.
func TestCustomersPageCostsConstantStatements(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "crm-stmt")
	users := []uuid.UUID{o.owner.UserID, o.admin.UserID, o.m1.UserID, o.m2.UserID}
	_, err := srv.DB.Exec(`
		WITH c AS (
			INSERT INTO customers (organization_id, name, assignee_id, created_by, created_at, updated_at)
			SELECT $1, 'Stmt ' || lpad(i::text, 3, '0'), ($2::uuid[])[1 + i % 4], ($2::uuid[])[1 + (i + 1) % 4], now(), now()
			FROM generate_series(1, 60) AS i RETURNING id)
		INSERT INTO customer_notes (organization_id, customer_id, author_id, body, created_at, updated_at)
		SELECT $1, c.id, ($2::uuid[])[1 + j % 4], 'note ' || j, now() + j * interval '1 second', now()
		FROM c CROSS JOIN generate_series(1, 4) AS j`, o.org, pq.Array(users))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int64{}
	for _, n := range []int{5, 50} {
		r, stmts := srv.PostCounted(t, o.m1.AccessToken, customersPageQuery, map[string]any{"o": o.org, "n": n})
		MustOK(t, r)
		var out struct {
			Customers struct {
				Edges []struct {
					Node struct {
						Assignee, CreatedBy struct{ Email string }
						Notes               struct {
							Edges []struct {
								Node struct {
									Body   string
									Author struct{ Email string }
								}
							}
						}
					}
				}
			}
		}
		r.Decode(t, &out)
		if len(out.Customers.Edges) != n {
			t.Fatalf("%d customers listed, want %d", len(out.Customers.Edges), n)
		}
		for _, e := range out.Customers.Edges {
			nd := e.Node
			if nd.Assignee.Email == "" || nd.CreatedBy.Email == "" || len(nd.Notes.Edges) != 3 ||
				nd.Notes.Edges[0].Node.Body != "note 4" || nd.Notes.Edges[2].Node.Author.Email == "" {
				t.Fatalf("customer node = %+v", nd)
			}
		}
		counts[n] = stmts
	}
	t.Logf("statements: %v", counts)
	if counts[5] != counts[50] || counts[50] > 6 {
		t.Errorf("statements for 5 and 50 customers: %d, %d (want equal, at most 6)", counts[5], counts[50])
	}
}

// TestCustomerRaces (not parallel, like the other concurrency tests): 20
// concurrent updates with one expectedVersion let exactly one through; 20
// concurrent creates with one email create one customer; assigning customers to
// a member while that member is removed leaves none assigned to a non-member.
func TestCustomerRaces(t *testing.T) {
	o := newCRMOrg(t, "crm-race")
	c := createCustomer(t, o.m1, o.org, map[string]any{"name": "Raced"})
	codes := func(n int, send func(i int) Response) map[string]int {
		var mu sync.Mutex
		out := map[string]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := send(i)
				mu.Lock()
				out[r.Code()+"/"+r.Field()]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return out
	}
	got := codes(20, func(i int) Response {
		return srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": c.ID, "v": 1,
			"in": map[string]any{"name": fmt.Sprintf("Writer %d", i)}})
	})
	if got["/"] != 1 || got["CONFLICT/expectedVersion"] != 19 {
		t.Errorf("20 updates with one expectedVersion: %v", got)
	}
	if g := getCustomer(t, o.m1, o.org, c.ID); g.Version != 2 || auditCount(t, o.org, "customer.updated") != 1 {
		t.Errorf("after the race: %+v, %d events", g, auditCount(t, o.org, "customer.updated"))
	}

	got = codes(20, func(i int) Response {
		return srv.Post(t, o.m2.AccessToken, `mutation($o: ID!, $in: CreateCustomerInput!) { createCustomer(orgId: $o, input: $in) { id } }`,
			map[string]any{"o": o.org, "in": map[string]any{"name": fmt.Sprintf("Dup %d", i), "email": "same@example.com"}})
	})
	if got["/"] != 1 || got["CONFLICT/email"] != 19 {
		t.Errorf("20 creates with one email: %v", got)
	}

	ids := make([]uuid.UUID, 10)
	for i := range ids {
		ids[i] = createCustomer(t, o.m1, o.org, map[string]any{"name": fmt.Sprintf("Assign %d", i)}).ID
	}
	got = codes(11, func(i int) Response {
		if i == 10 {
			return srv.Post(t, o.admin.AccessToken, `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
				map[string]any{"o": o.org, "u": o.m2.UserID})
		}
		return srv.Post(t, o.m1.AccessToken, updateCustomerMutation, map[string]any{"o": o.org, "id": ids[i],
			"in": map[string]any{"assigneeId": o.m2.UserID}})
	})
	if got["/"]+got["NOT_FOUND/assigneeId"] != 11 {
		t.Errorf("assigning while removing: %v", got)
	}
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id = $1 AND assignee_id = $2`, o.org, o.m2.UserID); err != nil || n != 0 {
		t.Errorf("%d customers assigned to a removed member (%v)", n, err)
	}
}
