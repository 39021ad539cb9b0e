package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

// crmXT is two organizations with customers and notes in each, for the
// cross-tenant tests of the customer operations:
//   - A: ownerA, adminA, memberA, memberA2 (MEMBERs), bridge (ADMIN);
//     customers cA and cAArchived; a note on cA by memberA2.
//   - B: ownerB, memberB (a MEMBER of B only), bridge (ADMIN);
//     customers cB and cBArchived, both assigned to memberB.
//   - for each of ownerA, adminA and bridge: a note on cA and a note on cB
//     that it wrote itself (author_id is a user: a note outlives its
//     author's membership, so a user of A can be the author of a note in B).
//     The author check would let it edit these; only the tenant scoping
//     refuses them.
//
// Fixture rows are inserted directly (not audited).
type crmXT struct {
	orgA, orgB                               uuid.UUID
	ownerA, adminA, memberA, memberA2        *Session
	ownerB, memberB, bridge                  *Session
	cA, cAArchived, cB, cBArchived, noteByA2 uuid.UUID
	noteInA, noteInB                         map[uuid.UUID]uuid.UUID // author -> note
}

func newCRMXT(t *testing.T) *crmXT {
	t.Helper()
	x := &crmXT{noteInA: map[uuid.UUID]uuid.UUID{}, noteInB: map[uuid.UUID]uuid.UUID{}}
	x.ownerA = srv.RegisterVerified(t, "crmxt-owner-a")
	x.orgA = srv.CreateOrg(t, x.ownerA, "crmxt A "+uuid.NewString()[:8])
	x.adminA = srv.AddMember(t, x.ownerA, x.orgA, "ADMIN", "crmxt-admin-a")
	x.memberA = srv.AddMember(t, x.ownerA, x.orgA, "MEMBER", "crmxt-member-a")
	x.memberA2 = srv.AddMember(t, x.ownerA, x.orgA, "MEMBER", "crmxt-member-a2")
	x.ownerB = srv.RegisterVerified(t, "crmxt-owner-b")
	x.orgB = srv.CreateOrg(t, x.ownerB, "crmxt B "+uuid.NewString()[:8])
	x.memberB = srv.AddMember(t, x.ownerB, x.orgB, "MEMBER", "crmxt-member-b")
	x.bridge = srv.AddMember(t, x.ownerA, x.orgA, "ADMIN", "crmxt-bridge")
	_, tok := srv.Invite(t, x.ownerB, x.orgB, x.bridge.Email, "ADMIN")
	srv.Accept(t, x.bridge, tok)

	x.cA, x.cAArchived, x.cB, x.cBArchived, x.noteByA2 = uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	if _, err := srv.DB.Exec(`
		INSERT INTO customers (organization_id, id, name, email, assignee_id, created_by, created_at, updated_at, archived_at)
		VALUES ($1, $2, 'XT customer A', 'a@crmxt.test', NULL, $5, now(), now(), NULL),
		       ($1, $3, 'XT archived A', NULL, NULL, $5, now(), now(), now()),
		       ($6, $4, 'XT customer B', 'b@crmxt.test', $8, $7, now(), now(), NULL),
		       ($6, $9, 'XT archived B', NULL, $8, $7, now(), now(), now())`,
		x.orgA, x.cA, x.cAArchived, x.cB, x.ownerA.UserID, x.orgB, x.ownerB.UserID, x.memberB.UserID, x.cBArchived); err != nil {
		t.Fatal(err)
	}
	addNote := func(org, cust, id, author uuid.UUID) {
		t.Helper()
		if _, err := srv.DB.Exec(`INSERT INTO customer_notes (organization_id, id, customer_id, author_id, body, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, now(), now())`, org, id, cust, author, "written by "+author.String()); err != nil {
			t.Fatal(err)
		}
	}
	addNote(x.orgA, x.cA, x.noteByA2, x.memberA2.UserID)
	for _, s := range []*Session{x.ownerA, x.adminA, x.bridge} {
		x.noteInA[s.UserID], x.noteInB[s.UserID] = uuid.New(), uuid.New()
		addNote(x.orgA, x.cA, x.noteInA[s.UserID], s.UserID)
		addNote(x.orgB, x.cB, x.noteInB[s.UserID], s.UserID)
	}
	return x
}

// TestCrossTenantCustomerIDsAreNotFound: for every customer operation, a
// legitimate ADMIN or OWNER of A passes exactly one argument from B: B's
// customer or note id with A's orgId, a user who is a member of B only as
// assignee (createCustomer, updateCustomer, importCustomers, and the
// customers(assigneeId:) filter), or B's orgId with A's customer or note id.
//
// The answer is NOT_FOUND, as for the organization area's foreign ids
// (TestCrossTenantIDsAreNotFound; never FORBIDDEN, which would confirm that
// the id exists somewhere), with the same message as an id that exists
// nowhere, and neither A nor B changes (database digest of each). The
// customers(assigneeId:) filter with B's member is not an error: it is a
// filter, and like any id that is no member of A it matches no customer of A
// (B's customers assigned to that user never appear); the answer is the same
// as for a random id.
//
// Actors: ADMIN of A, OWNER of A, and "bridge", an ADMIN of both A and B: the
// directive lets the bridge through with either orgId, so only the service's
// and the store's tenant scoping can refuse it.
func TestCrossTenantCustomerIDsAreNotFound(t *testing.T) {
	t.Parallel()
	x := newCRMXT(t)

	type xcase struct {
		name, query string
		// vars builds the arguments for actor s with the foreign value (or a random id).
		vars    func(s *Session, foreign uuid.UUID) map[string]any
		foreign func(s *Session) uuid.UUID
		field   string // extensions.field of the refusal ("" when none)
		list    bool   // customers(): OK with no rows, not an error
	}
	inA := func(id uuid.UUID) map[string]any { return map[string]any{"o": x.orgA, "id": id} }
	inB := func(id uuid.UUID) map[string]any { return map[string]any{"o": x.orgB, "id": id} }
	fixed := func(id uuid.UUID) func(*Session) uuid.UUID { return func(*Session) uuid.UUID { return id } }
	const (
		qCustomer   = `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) { id name email notes { totalCount } } }`
		qUpdate     = `mutation($o: ID!, $id: ID!) { updateCustomer(orgId: $o, id: $id, input: {name: "hijacked", status: INACTIVE}) { id } }`
		qArchive    = `mutation($o: ID!, $id: ID!) { archiveCustomer(orgId: $o, id: $id) { id } }`
		qRestore    = `mutation($o: ID!, $id: ID!) { restoreCustomer(orgId: $o, id: $id) { id } }`
		qAddNote    = `mutation($o: ID!, $id: ID!) { addCustomerNote(orgId: $o, customerId: $id, body: "planted") { id } }`
		qUpdateNote = `mutation($o: ID!, $id: ID!) { updateCustomerNote(orgId: $o, id: $id, body: "rewritten") { id } }`
		qDeleteNote = `mutation($o: ID!, $id: ID!) { deleteCustomerNote(orgId: $o, id: $id) }`
	)
	cases := []xcase{
		// B's ids with A's orgId.
		{name: "customer(A, B's customer)", query: qCustomer, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) }, foreign: fixed(x.cB)},
		{name: "updateCustomer(A, B's customer)", query: qUpdate, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) }, foreign: fixed(x.cB)},
		{name: "archiveCustomer(A, B's customer)", query: qArchive, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) }, foreign: fixed(x.cB)},
		{name: "restoreCustomer(A, B's archived customer)", query: qRestore, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) }, foreign: fixed(x.cBArchived)},
		{name: "addCustomerNote(A, B's customer)", query: qAddNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) }, foreign: fixed(x.cB)},
		{name: "updateCustomerNote(A, B's note by the actor)", query: qUpdateNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) },
			foreign: func(s *Session) uuid.UUID { return x.noteInB[s.UserID] }},
		{name: "deleteCustomerNote(A, B's note by the actor)", query: qDeleteNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inA(id) },
			foreign: func(s *Session) uuid.UUID { return x.noteInB[s.UserID] }},
		// A member of B only as the assignee, in A.
		{name: "createCustomer(A, assignee of B)", query: `mutation($o: ID!, $in: CreateCustomerInput!) { createCustomer(orgId: $o, input: $in) { id } }`,
			vars: func(_ *Session, u uuid.UUID) map[string]any {
				return map[string]any{"o": x.orgA, "in": map[string]any{"name": "Assigned across", "assigneeId": u}}
			}, foreign: fixed(x.memberB.UserID), field: "assigneeId"},
		{name: "updateCustomer(A, A's customer, assignee of B)", query: `mutation($o: ID!, $id: ID!, $in: UpdateCustomerInput!) { updateCustomer(orgId: $o, id: $id, input: $in) { id } }`,
			vars: func(_ *Session, u uuid.UUID) map[string]any {
				return map[string]any{"o": x.orgA, "id": x.cA, "in": map[string]any{"assigneeId": u}}
			}, foreign: fixed(x.memberB.UserID), field: "assigneeId"},
		{name: "importCustomers(A, row 1 assigned to B's member)", query: `mutation($o: ID!, $in: [CreateCustomerInput!]!) { importCustomers(orgId: $o, input: $in) { id } }`,
			vars: func(_ *Session, u uuid.UUID) map[string]any {
				return map[string]any{"o": x.orgA, "in": []map[string]any{{"name": "Fine row"}, {"name": "Assigned across", "assigneeId": u}}}
			}, foreign: fixed(x.memberB.UserID), field: "input[1].assigneeId"},
		{name: "customers(A, assigneeId of B)", list: true,
			query: `query($o: ID!, $u: ID) { customers(orgId: $o, assigneeId: $u, includeArchived: true) { totalCount edges { node { id name } } pageInfo { hasNextPage } } }`,
			vars:  func(_ *Session, u uuid.UUID) map[string]any { return map[string]any{"o": x.orgA, "u": u} }, foreign: fixed(x.memberB.UserID)},
		// B's orgId with A's ids: the bridge passes the directive for B.
		{name: "customer(B, A's customer)", query: qCustomer, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) }, foreign: fixed(x.cA)},
		{name: "updateCustomer(B, A's customer)", query: qUpdate, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) }, foreign: fixed(x.cA)},
		{name: "archiveCustomer(B, A's customer)", query: qArchive, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) }, foreign: fixed(x.cA)},
		{name: "restoreCustomer(B, A's archived customer)", query: qRestore, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) }, foreign: fixed(x.cAArchived)},
		{name: "addCustomerNote(B, A's customer)", query: qAddNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) }, foreign: fixed(x.cA)},
		{name: "updateCustomerNote(B, A's note by the actor)", query: qUpdateNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) },
			foreign: func(s *Session) uuid.UUID { return x.noteInA[s.UserID] }},
		{name: "deleteCustomerNote(B, A's note by the actor)", query: qDeleteNote, vars: func(_ *Session, id uuid.UUID) map[string]any { return inB(id) },
			foreign: func(s *Session) uuid.UUID { return x.noteInA[s.UserID] }},
	}
	scopeA := authzScope{orgs: []uuid.UUID{x.orgA}}
	scopeB := authzScope{orgs: []uuid.UUID{x.orgB}}
	ran := 0
	for _, actor := range []struct {
		name string
		s    *Session
	}{{"ADMIN of A", x.adminA}, {"OWNER of A", x.ownerA}, {"ADMIN of A and B", x.bridge}} {
		for _, c := range cases {
			t.Run(actor.name+"/"+c.name, func(t *testing.T) {
				beforeA, beforeB := authzDigest(t, scopeA), authzDigest(t, scopeB)
				foreign := c.foreign(actor.s)
				r := srv.Post(t, actor.s.AccessToken, c.query, c.vars(actor.s, foreign))
				rn := srv.Post(t, actor.s.AccessToken, c.query, c.vars(actor.s, uuid.New()))
				ran++
				if c.list {
					MustOK(t, r)
					var out struct {
						Customers struct {
							TotalCount int
							Edges      []struct{ Node struct{ ID uuid.UUID } }
						}
					}
					r.Decode(t, &out)
					if out.Customers.TotalCount != 0 || len(out.Customers.Edges) != 0 {
						t.Errorf("A's customers assigned to B's member: want none, got %s", r.Raw)
					}
					if string(r.Data) != string(MustOK(t, rn).Data) {
						t.Errorf("B's member and a random id filter differently:\n%s\n%s", r.Raw, rn.Raw)
					}
				} else {
					if r.Code() != "NOT_FOUND" || r.Field() != c.field || len(r.Errors) != 1 {
						t.Errorf("B's value through A: want one NOT_FOUND (field %q), got %s", c.field, r.Raw)
					}
					if v := authzDataAt(r.Data, []string{rootField(c.query)}); v != "null" {
						t.Errorf("data on a refused cross-tenant request: %s", r.Raw)
					}
					wantLikeNowhere(t, r, rn)
				}
				wantUnchanged(t, "org A", scopeA, beforeA)
				wantUnchanged(t, "org B", scopeB, beforeB)
			})
		}
	}
	if ran != 54 {
		t.Errorf("ran %d cross-tenant customer cases, want 54 (18 cases x 3 actors)", ran)
	}

	// Sanity: the fixture is reachable the legitimate way, so the refusals
	// above come from the tenant scoping, not from a broken fixture.
	t.Run("the same ids through their own organization", func(t *testing.T) {
		MustOK(t, srv.Post(t, x.bridge.AccessToken, qCustomer, inB(x.cB)))
		MustOK(t, srv.Post(t, x.bridge.AccessToken, qCustomer, inA(x.cA)))
		var out struct{ Customers struct{ TotalCount int } }
		MustOK(t, srv.Post(t, x.bridge.AccessToken, `query($o: ID!, $u: ID) { customers(orgId: $o, assigneeId: $u, includeArchived: true) { totalCount } }`,
			map[string]any{"o": x.orgB, "u": x.memberB.UserID})).Decode(t, &out)
		if out.Customers.TotalCount != 2 {
			t.Errorf("B's customers assigned to B's member: %d, want 2", out.Customers.TotalCount)
		}
		before := authzDigest(t, scopeA)
		MustOK(t, srv.Post(t, x.bridge.AccessToken, qUpdateNote, inA(x.noteInA[x.bridge.UserID])))
		if authzDigest(t, scopeA) == before {
			t.Error("the bridge edited its own note in A but nothing changed")
		}
	})
}

// rootField is the name of a one-field operation's root field: "customer" in
// `query($o: ID!) { customer(orgId: $o) { id } }`.
func rootField(query string) string {
	_, rest, _ := strings.Cut(query, "{")
	name, _, _ := strings.Cut(strings.TrimSpace(rest), "(")
	return name
}

// TestMemberCannotTouchAnotherMembersNote: a MEMBER may neither edit nor
// delete a note another member wrote in the same organization: FORBIDDEN (a
// same-tenant role rule, like the matrix's rows; the member reads the note
// anyway, so NOT_FOUND would hide nothing), and nothing changes. The matrix
// covers an ADMIN and the OWNER editing the MEMBER's note and the MEMBER
// deleting another member's note; this adds the MEMBER editing one.
func TestMemberCannotTouchAnotherMembersNote(t *testing.T) {
	t.Parallel()
	x := newCRMXT(t)
	scope := authzScope{orgs: []uuid.UUID{x.orgA, x.orgB}}
	for _, c := range []struct{ name, query string }{
		{"edit", `mutation($o: ID!, $id: ID!) { updateCustomerNote(orgId: $o, id: $id, body: "edited by another member") { id body } }`},
		{"delete", `mutation($o: ID!, $id: ID!) { deleteCustomerNote(orgId: $o, id: $id) }`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := authzDigest(t, scope)
			r := srv.Post(t, x.memberA.AccessToken, c.query, map[string]any{"o": x.orgA, "id": x.noteByA2})
			if r.Code() != "FORBIDDEN" {
				t.Errorf("MEMBER on another member's note: want FORBIDDEN, got %s", r.Raw)
			}
			wantUnchanged(t, "the tenancy rows", scope, before)
		})
	}
	var body string
	if err := srv.DB.Get(&body, `SELECT body FROM customer_notes WHERE organization_id = $1 AND id = $2`, x.orgA, x.noteByA2); err != nil {
		t.Fatal(err)
	}
	if body != "written by "+x.memberA2.UserID.String() {
		t.Errorf("note body = %q", body)
	}
	// Its author may: the refusal above is about authorship, not a broken note.
	MustOK(t, srv.Post(t, x.memberA2.AccessToken, `mutation($o: ID!, $id: ID!) { updateCustomerNote(orgId: $o, id: $id, body: "edited by its author") { id } }`,
		map[string]any{"o": x.orgA, "id": x.noteByA2}))
}

// TestAuditLogIntegrityThroughTheEndpoint: the OWNER sees the organization's
// chain hold once the sealer (run by the server) has sealed what its
// mutations recorded, and, after an event is changed in the database, the
// event that broke it.
func TestAuditLogIntegrityThroughTheEndpoint(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "chain-owner")
	org := srv.CreateOrg(t, owner, "chain "+uuid.NewString()[:8])
	srv.AddMember(t, owner, org, "ADMIN", "chain-admin")
	const q = `query($o: ID!) { organization(orgId: $o) { auditLogIntegrity { checked lastVerified broken unsealed firstBroken { id action } } } }`
	type integrity struct {
		Checked, LastVerified, Unsealed int
		Broken                          bool
		FirstBroken                     *struct{ ID uuid.UUID }
	}
	get := func() integrity {
		var out struct {
			Organization struct{ AuditLogIntegrity integrity }
		}
		MustOK(t, srv.Post(t, owner.AccessToken, q, map[string]any{"o": org})).Decode(t, &out)
		return out.Organization.AuditLogIntegrity
	}
	var events int
	if err := srv.DB.Get(&events, `SELECT count(*) FROM audit_events WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	var got integrity
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got = get(); got.Unsealed == 0 && got.Checked == events || time.Now().After(deadline) {
			break
		}
	}
	if got.Checked != events || got.LastVerified != events || got.Broken || got.FirstBroken != nil || events < 2 {
		t.Fatalf("integrity = %+v, want %d links holding", got, events)
	}
	var victim uuid.UUID
	if err := srv.DB.Get(&victim, `SELECT event_id FROM audit_chain WHERE organization_id = $1 AND seq = 2`, org); err != nil {
		t.Fatal(err)
	}
	tx := srv.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	for _, stmt := range []string{
		`SET LOCAL session_replication_role = replica`,
		`UPDATE audit_events SET actor_id = NULL WHERE organization_id = '` + org.String() + `' AND id = '` + victim.String() + `'`,
	} {
		if _, err := tx.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got = get(); !got.Broken || got.FirstBroken == nil || got.FirstBroken.ID != victim || got.LastVerified != 1 {
		t.Fatalf("after tampering: %+v, want the chain broken at %s", got, victim)
	}
}
