package app_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/metrics"
)

// TestQuotasRefuseWritesPastTheLimit: each organization quota refuses the
// write that would pass it with QUOTA_EXCEEDED, extensions.limit and
// extensions.max, and the refused write changes nothing; archiving frees a
// customer's or a product's slot; Organization.limits shows the use; the
// refusals are counted in /metrics by limit.
func TestQuotasRefuseWritesPastTheLimit(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "quotas")
	org := srv.CreateOrg(t, owner, "Quotas "+uuid.NewString()[:8])
	setLimit := func(column string, n int) {
		t.Helper()
		if _, err := srv.DB.Exec(`UPDATE organization_limits SET `+column+` = $2 WHERE organization_id = $1`, org, n); err != nil {
			t.Fatal(err)
		}
	}
	post := func(query string, vars map[string]any) Response {
		t.Helper()
		if vars == nil {
			vars = map[string]any{}
		}
		vars["o"] = org
		return srv.Post(t, owner.AccessToken, query, vars)
	}
	id := func(r Response, field string) string {
		t.Helper()
		var out map[string]struct{ ID string }
		MustOK(t, r).Decode(t, &out)
		return out[field].ID
	}
	refused := func(what string, r Response, limit string, max int, before string) {
		t.Helper()
		if r.Code() != "QUOTA_EXCEEDED" || r.Errors[0].Extensions["limit"] != limit || r.Errors[0].Extensions["max"] != float64(max) {
			t.Fatalf("%s: want QUOTA_EXCEEDED on %s with max %d: %s", what, limit, max, r.Raw)
		}
		if after := srv.TenancyDigest(t, org); after != before {
			t.Fatalf("%s: a refused write changed the organization:\n before %s\n after  %s", what, before, after)
		}
	}
	type quota struct{ Used, Max int }
	type orgLimits struct {
		Seats, Customers, Products, OrdersPerDay quota
		NotesPerCustomer                         int
	}
	limits := func() orgLimits {
		t.Helper()
		var out struct{ Organization struct{ Limits orgLimits } }
		MustOK(t, post(`query($o: ID!) { organization(orgId: $o) { limits {
			seats { used max } customers { used max } products { used max } ordersPerDay { used max } notesPerCustomer } } }`, nil)).Decode(t, &out)
		return out.Organization.Limits
	}
	if l := limits(); l.Seats != (quota{1, 250}) || l.Customers != (quota{0, 250000}) || l.Products != (quota{0, 50000}) ||
		l.OrdersPerDay != (quota{0, 50000}) || l.NotesPerCustomer != 1000 {
		t.Fatalf("a new organization's limits: %+v, want the defaults and only the owner's seat used", l)
	}

	const (
		createCustomer  = `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`
		importCustomers = `mutation($o: ID!) { importCustomers(orgId: $o, input: [{name: "I1"}, {name: "I2"}]) { id } }`
		archiveCustomer = `mutation($o: ID!, $id: ID!) { archiveCustomer(orgId: $o, id: $id) { id } }`
		restoreCustomer = `mutation($o: ID!, $id: ID!) { restoreCustomer(orgId: $o, id: $id) { id } }`
	)
	// Customers: 3 active at most; an import is refused whole.
	setLimit("customers", 3)
	first := id(post(createCustomer, map[string]any{"n": "C1"}), "createCustomer")
	second := id(post(createCustomer, map[string]any{"n": "C2"}), "createCustomer")
	refused("an import of 2 with 1 slot left", post(importCustomers, nil), "customers", 3, srv.TenancyDigest(t, org))
	id(post(createCustomer, map[string]any{"n": "C3"}), "createCustomer")
	refused("a 4th customer", post(createCustomer, map[string]any{"n": "C4"}), "customers", 3, srv.TenancyDigest(t, org))
	MustOK(t, post(archiveCustomer, map[string]any{"id": first}))
	id(post(createCustomer, map[string]any{"n": "C4"}), "createCustomer") // the archived one's slot
	refused("restoring a 4th", post(restoreCustomer, map[string]any{"id": first}), "customers", 3, srv.TenancyDigest(t, org))
	if l := limits(); l.Customers != (quota{3, 3}) {
		t.Errorf("customers after the refusals: %+v, want 3 of 3", l.Customers)
	}

	// Notes: 1 per customer.
	setLimit("notes_per_customer", 1)
	const addNote = `mutation($o: ID!, $c: ID!) { addCustomerNote(orgId: $o, customerId: $c, body: "hello") { id } }`
	id(post(addNote, map[string]any{"c": first}), "addCustomerNote")
	refused("a 2nd note", post(addNote, map[string]any{"c": first}), "notesPerCustomer", 1, srv.TenancyDigest(t, org))

	// Products: 1; orders: 1 a day.
	setLimit("products", 1)
	const createProduct = `mutation($o: ID!, $s: String!) { createProduct(orgId: $o, input: {sku: $s, name: "Widget", price: 100, trackInventory: false}) { id } }`
	product := id(post(createProduct, map[string]any{"s": "W-1"}), "createProduct")
	refused("a 2nd product", post(createProduct, map[string]any{"s": "W-2"}), "products", 1, srv.TenancyDigest(t, org))
	setLimit("orders_per_day", 1)
	const createOrder = `mutation($o: ID!, $c: ID!, $p: ID!) { createOrder(orgId: $o, input: {customerId: $c, lines: [{productId: $p, quantity: 1}]}) { id } }`
	id(post(createOrder, map[string]any{"c": second, "p": product}), "createOrder")
	refused("a 2nd order today", post(createOrder, map[string]any{"c": second, "p": product}), "ordersPerDay", 1, srv.TenancyDigest(t, org))
	if l := limits(); l.OrdersPerDay != (quota{1, 1}) || l.Products != (quota{1, 1}) {
		t.Errorf("orders and products: %+v, %+v; want 1 of 1 each", l.OrdersPerDay, l.Products)
	}

	// Seats: the owner and one pending invitation.
	setLimit("seats", 2)
	const invite = `mutation($o: ID!, $e: String!) { inviteMember(orgId: $o, email: $e) { id } }`
	MustOK(t, post(invite, map[string]any{"e": UniqueEmail("quota-seat")}))
	refused("a 3rd seat", post(invite, map[string]any{"e": UniqueEmail("quota-seat")}), "seats", 2, srv.TenancyDigest(t, org))

	// The refusals are counted by limit, on an app with a metrics registry.
	reg := metrics.New()
	api, _ := ownServer(t, func(o *app.Options) { o.Metrics = reg })
	for range 2 {
		if c := api.Post(t, owner.AccessToken, createProduct, map[string]any{"o": org, "s": "W-3"}).Code(); c != "QUOTA_EXCEEDED" {
			t.Fatalf("a 2nd product on the metered app: %s", c)
		}
	}
	if got := value(t, scrape(t, metrics.Handler(reg)), "tenantgraph_quota_refusals_total", "limit=products"); got != 2 {
		t.Errorf(`tenantgraph_quota_refusals_total{limit="products"} = %v, want 2`, got)
	}
}

// TestConcurrentCreatesWithOneSlotLeft: 20 createCustomer race for the
// organization's last customer slot; exactly one wins, the others are
// QUOTA_EXCEEDED, and the organization holds exactly its limit.
func TestConcurrentCreatesWithOneSlotLeft(t *testing.T) {
	owner := srv.RegisterVerified(t, "quotarace")
	org := srv.CreateOrg(t, owner, "Quota race "+uuid.NewString()[:8])
	MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!) { importCustomers(orgId: $o, input: [{name: "A"}, {name: "B"}, {name: "C"}, {name: "D"}]) { id } }`,
		map[string]any{"o": org}))
	if _, err := srv.DB.Exec(`UPDATE organization_limits SET customers = 5 WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	const n = 20
	codes := make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r := srv.Post(t, owner.AccessToken, `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`,
				map[string]any{"o": org, "n": fmt.Sprintf("Racer %d", i)})
			codes[i] = r.Code()
		})
	}
	close(start)
	wg.Wait()
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	if tally[""] != 1 || tally["QUOTA_EXCEEDED"] != n-1 {
		t.Errorf("outcomes %v, want 1 success and %d QUOTA_EXCEEDED", tally, n-1)
	}
	var rows, used int
	if err := srv.DB.QueryRow(`SELECT (SELECT count(*) FROM customers WHERE organization_id = $1),
		(SELECT used FROM organization_usage WHERE organization_id = $1 AND quota = 'customers')`, org).Scan(&rows, &used); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || used != 5 {
		t.Errorf("%d customers, usage counted %d; want 5 and 5", rows, used)
	}
}
