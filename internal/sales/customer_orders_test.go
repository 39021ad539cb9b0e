package sales_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

// TestCustomerOrdersAndLifetimeValue: a customer's orders, newest first, and
// lifetime value (PAID and FULFILLED, not PENDING, CANCELLED or REFUNDED),
// for a page of customers at a fixed number of statements: 5 for 5 and for
// 20 customers (the membership, the customers, their lifetime values, their
// first pages of orders, their orders' counts; the orders' customer is the
// page's).
func TestCustomerOrdersAndLifetimeValue(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-cust")
	p := s.newProduct(t, "P", 1000, 1000)
	ada := s.customer
	first := s.mustOrder(t, s.member, line(p, 1))  // paid: 1,000
	second := s.mustOrder(t, s.member, line(p, 2)) // fulfilled: 2,000
	third := s.mustOrder(t, s.member, line(p, 4))  // refunded
	s.mustOrder(t, s.member, line(p, 8))           // pending
	for _, id := range []uuid.UUID{first.ID, second.ID, third.ID} {
		MustOK(t, s.transition(t, s.admin, "markOrderPaid", id, ""))
	}
	MustOK(t, s.transition(t, s.admin, "fulfillOrder", second.ID, ""))
	MustOK(t, s.transition(t, s.admin, "refundOrder", third.ID, ""))

	r := MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!, $id: ID!) { customer(orgId: $o, id: $id) {
		lifetimeValue { amount formatted } orders(first: 3) { totalCount pageInfo { hasNextPage endCursor } edges { node { number status } } } } }`,
		map[string]any{"o": s.org, "id": ada}))
	var out struct {
		Customer struct {
			LifetimeValue struct{ Amount, Formatted string }
			Orders        struct {
				TotalCount int
				PageInfo   struct {
					HasNextPage bool
					EndCursor   string
				}
				Edges []struct{ Node struct{ Number int } }
			}
		}
	}
	r.Decode(t, &out)
	c := out.Customer
	if c.LifetimeValue.Amount != "3000" || c.LifetimeValue.Formatted != "USD 30.00" || c.Orders.TotalCount != 4 ||
		len(c.Orders.Edges) != 3 || c.Orders.Edges[0].Node.Number != 4 || !c.Orders.PageInfo.HasNextPage {
		t.Fatalf("customer = %+v", c)
	}
	// The next page, through the cursor.
	r = MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!, $id: ID!, $after: String) { customer(orgId: $o, id: $id) {
		orders(first: 3, after: $after) { edges { node { number } } } } }`,
		map[string]any{"o": s.org, "id": ada, "after": c.Orders.PageInfo.EndCursor}))
	r.Decode(t, &out)
	if e := out.Customer.Orders.Edges; len(e) != 1 || e[0].Node.Number != 1 {
		t.Errorf("second page = %+v", e)
	}

	// A page of customers with their orders and lifetime values: constant statements.
	counts := map[int]int64{}
	for _, n := range []int{5, 20} {
		for len(customersOf(t, s)) < n {
			id := s.newCustomer(t, fmt.Sprintf("Cust %03d", len(customersOf(t, s))))
			if _, err := srv.DB.Exec(`
				WITH n AS (INSERT INTO order_numbers AS c (organization_id, last) VALUES ($1, 1)
					ON CONFLICT (organization_id) DO UPDATE SET last = c.last + 1 RETURNING last)
				INSERT INTO orders (organization_id, number, customer_id, status, currency, subtotal, total, line_count, created_at)
				SELECT $1, n.last, $2, 'PENDING', 'USD', 0, 0, 1, now() FROM n`, s.org, id); err != nil {
				t.Fatal(err)
			}
		}
		r, stmts := srv.PostCounted(t, s.member.AccessToken, `query($o: ID!, $n: Int) { customers(orgId: $o, first: $n) { edges { node {
			name lifetimeValue { amount } orders(first: 2) { totalCount edges { node { number customer { name } } } } } } } }`,
			map[string]any{"o": s.org, "n": n})
		MustOK(t, r)
		counts[n] = stmts
	}
	t.Logf("statements for 5 and 20 customers: %v", counts)
	if counts[5] != 5 || counts[20] != 5 {
		t.Errorf("statements for 5 and 20 customers: %d, %d (want 5 and 5)", counts[5], counts[20])
	}
}

func customersOf(t *testing.T, s *shop) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	if err := srv.DB.Select(&ids, `SELECT id FROM customers WHERE organization_id = $1`, s.org); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestOrganizationCurrency: the OWNER sets the currency while the
// organization has no orders (prices then read in it); after the first order
// it is CONFLICT and nothing changes; an unknown code is BAD_USER_INPUT; an
// ADMIN may not.
func TestOrganizationCurrency(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-cur")
	p := s.newProduct(t, "P", 1500, 10)
	const set = `mutation($o: ID!, $c: String!) { setOrganizationCurrency(orgId: $o, currency: $c) { currency } }`
	WantCode(t, srv.Post(t, s.admin.AccessToken, set, map[string]any{"o": s.org, "c": "EUR"}), "FORBIDDEN")
	for _, bad := range []string{"eur", "EURO", "XXX", ""} {
		r := srv.Post(t, s.owner.AccessToken, set, map[string]any{"o": s.org, "c": bad})
		WantCode(t, r, "BAD_USER_INPUT")
		if r.Field() != "currency" {
			t.Errorf("%q: field %q", bad, r.Field())
		}
	}
	MustOK(t, srv.Post(t, s.owner.AccessToken, set, map[string]any{"o": s.org, "c": "JPY"}))
	o := s.mustOrder(t, s.member, line(p, 1))
	if o.Subtotal.Currency != "JPY" || o.Subtotal.Formatted != "JPY 1,500" {
		t.Errorf("order in JPY: %+v", o.Subtotal)
	}
	r := srv.Post(t, s.owner.AccessToken, set, map[string]any{"o": s.org, "c": "EUR"})
	WantCode(t, r, "CONFLICT")
	if r.Field() != "currency" {
		t.Errorf("field %q", r.Field())
	}
	var cur string
	if err := srv.DB.Get(&cur, `SELECT currency FROM organizations WHERE id = $1`, s.org); err != nil || cur != "JPY" {
		t.Errorf("currency = %q (%v), want JPY", cur, err)
	}
	if n := count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'organization.currency_changed'`, s.org); n != 1 {
		t.Errorf("%d currency_changed events, want 1", n)
	}
	// A time zone PostgreSQL does not know is refused.
	r = srv.Post(t, s.admin.AccessToken, `mutation($o: ID!) { setOrganizationTimeZone(orgId: $o, timeZone: "Mars/Olympus") { timeZone } }`,
		map[string]any{"o": s.org})
	WantCode(t, r, "BAD_USER_INPUT")
	// Set at creation.
	r = MustOK(t, srv.Post(t, s.owner.AccessToken, `mutation { createOrganization(input: {name: "Tokyo shop", currency: "JPY", timeZone: "Asia/Tokyo"}) { currency timeZone } }`, nil))
	var created struct {
		CreateOrganization struct{ Currency, TimeZone string }
	}
	r.Decode(t, &created)
	if created.CreateOrganization.Currency != "JPY" || created.CreateOrganization.TimeZone != "Asia/Tokyo" {
		t.Errorf("created = %+v", created.CreateOrganization)
	}
}
