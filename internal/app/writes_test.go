package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

// TestMutationsArePricedPerDocument: the rows written by importCustomers are
// summed over the whole document, aliases included, and a mutation has at
// most 20 root fields; a refused document writes nothing.
func TestMutationsArePricedPerDocument(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "writes")
	org := srv.CreateOrg(t, owner, "Writes "+uuid.NewString()[:8])
	customers := func() int {
		var n int
		if err := srv.DB.Get(&n, `SELECT count(*) FROM customers WHERE organization_id = $1`, org); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"name": fmt.Sprintf("Row %d", i)}
		}
		return out
	}
	imports := func(aliases int) string {
		var b strings.Builder
		b.WriteString(`mutation($o: ID!, $rows: [CreateCustomerInput!]!) {`)
		for i := range aliases {
			fmt.Fprintf(&b, " i%d: importCustomers(orgId: $o, input: $rows) { id }", i)
		}
		return b.String() + " }"
	}
	refused := func(r Response, code string, max float64) {
		t.Helper()
		if r.Code() != code || r.Errors[0].Extensions["max"] != max || r.Data != nil && string(r.Data) != "null" {
			t.Fatalf("want %s with max %v and no data: %s", code, max, r.Raw)
		}
	}

	// The report's document: 30 aliases of one 1,000-row import.
	refused(srv.Post(t, owner.AccessToken, imports(30), map[string]any{"o": org, "rows": rows(1000)}), "BULK_LIMIT_EXCEEDED", 1000)
	// The budget is the document's: two imports of 501 rows are over it, through a fragment too.
	refused(srv.Post(t, owner.AccessToken, imports(2), map[string]any{"o": org, "rows": rows(501)}), "BULK_LIMIT_EXCEEDED", 1000)
	refused(srv.Post(t, owner.AccessToken, `mutation($o: ID!, $rows: [CreateCustomerInput!]!) { ...A b: importCustomers(orgId: $o, input: $rows) { id } }
		fragment A on Mutation { a: importCustomers(orgId: $o, input: $rows) { id } }`, map[string]any{"o": org, "rows": rows(501)}), "BULK_LIMIT_EXCEEDED", 1000)
	// 21 createCustomer: over the 20 root fields of a mutation.
	var b strings.Builder
	b.WriteString(`mutation($o: ID!) {`)
	for i := range 21 {
		fmt.Fprintf(&b, ` c%d: createCustomer(orgId: $o, input: {name: "C%d"}) { id }`, i, i)
	}
	refused(srv.Post(t, owner.AccessToken, b.String()+" }", map[string]any{"o": org}), "MUTATION_LIMIT_EXCEEDED", 20)
	if n := customers(); n != 0 {
		t.Fatalf("%d customers written by refused documents", n)
	}

	// Within the budget: two imports of 500, every row written.
	MustOK(t, srv.Post(t, owner.AccessToken, imports(2), map[string]any{"o": org, "rows": rows(500)}))
	if n := customers(); n != 1000 {
		t.Fatalf("%d customers after two imports of 500, want 1000", n)
	}
}
