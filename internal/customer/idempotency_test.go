package customer_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const createWithKey = `mutation($o: ID!, $in: CreateCustomerInput!, $k: String) {
	createCustomer(orgId: $o, input: $in, idempotencyKey: $k) { id name email version } }`

// countCustomers is the number of org's customers named name, read from the database.
func countCustomers(t *testing.T, org uuid.UUID, name string) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id = $1 AND name = $2`, org, name); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdempotencyKeyReplaysTheFirstResult: createCustomer with a key creates
// once; the same request again returns the same customer and writes nothing
// (no second row, no second audit event); the key with another input is
// CONFLICT on idempotencyKey; the key is the actor's own.
func TestIdempotencyKeyReplaysTheFirstResult(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "idem-owner")
	org := srv.CreateOrg(t, owner, "Idem "+uuid.NewString()[:8])
	admin := srv.AddMember(t, owner, org, "ADMIN", "idem-admin")
	key := "create-" + uuid.NewString()
	in := map[string]any{"name": "Ada Idem", "email": "ada@idem.test"}
	vars := map[string]any{"o": org, "in": in, "k": key}

	first := MustOK(t, srv.Post(t, owner.AccessToken, createWithKey, vars))
	again := MustOK(t, srv.Post(t, owner.AccessToken, createWithKey, vars))
	if string(first.Data) != string(again.Data) {
		t.Fatalf("the replay answered %s, the first request %s", again.Data, first.Data)
	}
	if n := countCustomers(t, org, "Ada Idem"); n != 1 {
		t.Fatalf("%d customers after a request and its replay, want 1", n)
	}
	if events := auditCount(t, org, "customer.created"); events != 1 {
		t.Fatalf("%d customer.created events, want 1", events)
	}

	other := map[string]any{"o": org, "in": map[string]any{"name": "Bob Idem"}, "k": key}
	if r := srv.Post(t, owner.AccessToken, createWithKey, other); r.Code() != "CONFLICT" || r.Field() != "idempotencyKey" {
		t.Fatalf("the key with another input: %s, want CONFLICT on idempotencyKey", r.Raw)
	}
	if n := countCustomers(t, org, "Bob Idem"); n != 0 {
		t.Fatalf("the refused request created %d customers", n)
	}
	// Another member's key of the same name is theirs: a new creation (which
	// the unique email refuses here, proving it ran).
	if r := srv.Post(t, admin.AccessToken, createWithKey, vars); r.Code() != "CONFLICT" || r.Field() != "email" {
		t.Fatalf("another member with the same key: %s, want a new creation refused on email", r.Raw)
	}

	for _, bad := range []string{"", "has space", "ünïcode", string(make([]byte, 101))} {
		v := map[string]any{"o": org, "in": map[string]any{"name": "Bad Key"}, "k": bad}
		if r := srv.Post(t, owner.AccessToken, createWithKey, v); r.Code() != "BAD_USER_INPUT" {
			t.Fatalf("key %q: %s, want BAD_USER_INPUT", bad, r.Raw)
		}
	}
	if n := countCustomers(t, org, "Bad Key"); n != 0 {
		t.Fatalf("refused keys created %d customers", n)
	}
}

// TestIdempotencyKeyAFailedFirstAttemptStoresNothing: a request refused (an
// email already taken) stores no result under its key, so the same key works
// once the cause is gone.
func TestIdempotencyKeyAFailedFirstAttemptStoresNothing(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "idem-fail")
	org := srv.CreateOrg(t, owner, "Idem fail "+uuid.NewString()[:8])
	taken := MustOK(t, srv.Post(t, owner.AccessToken, createWithKey,
		map[string]any{"o": org, "in": map[string]any{"name": "First", "email": "dup@idem.test"}}))
	var first struct{ CreateCustomer struct{ ID uuid.UUID } }
	taken.Decode(t, &first)

	vars := map[string]any{"o": org, "in": map[string]any{"name": "Second", "email": "dup@idem.test"}, "k": "retry-me"}
	if r := srv.Post(t, owner.AccessToken, createWithKey, vars); r.Code() != "CONFLICT" || r.Field() != "email" {
		t.Fatalf("first attempt: %s, want CONFLICT on email", r.Raw)
	}
	MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!, $id: ID!) { updateCustomer(orgId: $o, id: $id, input: {email: null}) { id } }`,
		map[string]any{"o": org, "id": first.CreateCustomer.ID}))
	MustOK(t, srv.Post(t, owner.AccessToken, createWithKey, vars))
	if n := countCustomers(t, org, "Second"); n != 1 {
		t.Fatalf("%d customers after the retry, want 1", n)
	}
}

// TestIdempotencyKeyConcurrentRequestsRunOnce: 20 identical imports with one
// key at once: one runs, the others wait for it and get its answer (20
// identical answers, the customers imported once).
func TestIdempotencyKeyConcurrentRequestsRunOnce(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "idem-race")
	org := srv.CreateOrg(t, owner, "Idem race "+uuid.NewString()[:8])
	rows := []map[string]any{{"name": "Race One"}, {"name": "Race Two", "tags": []string{"x"}}}
	vars := map[string]any{"o": org, "in": rows, "k": "import-" + uuid.NewString()}
	const n = 20
	answers := make([]json.RawMessage, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := srv.Post(t, owner.AccessToken, `mutation($o: ID!, $in: [CreateCustomerInput!]!, $k: String) {
				importCustomers(orgId: $o, input: $in, idempotencyKey: $k) { id name tags version } }`, vars)
			if len(r.Errors) > 0 {
				t.Errorf("request %d: %s", i, r.Raw)
			}
			answers[i] = r.Data
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if string(answers[i]) != string(answers[0]) {
			t.Fatalf("answer %d differs:\n%s\nfirst:\n%s", i, answers[i], answers[0])
		}
	}
	if got := countCustomers(t, org, "Race One") + countCustomers(t, org, "Race Two"); got != 2 {
		t.Fatalf("%d customers after 20 identical imports, want 2", got)
	}
}
