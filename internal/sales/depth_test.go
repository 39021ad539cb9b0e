package sales_test

import (
	"strings"
	"testing"

	. "tenantgraph/internal/apitest"
)

// TestDepthLimitOnTheOrderCustomerCycle: Order.customer and Customer.orders
// are the schema's first cycle, so the depth limit (10, docs/api.md) is what
// bounds it: through the real endpoint, depth 10 runs and depth 11 is
// refused with DEPTH_LIMIT_EXCEEDED, before any resolver runs.
func TestDepthLimitOnTheOrderCustomerCycle(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-depth")
	o := s.mustOrder(t, s.member, line(s.newProduct(t, "D-1", 100, 5), 1))

	// cycle nests Order -> customer -> orders -> edges -> node n times (4 levels each).
	cycle := func(n int, leaf string) string {
		return strings.Repeat("customer { orders(first: 1) { edges { node { ", n) + leaf + strings.Repeat(" } } } }", n)
	}
	query := func(body string) string {
		return `query($o: ID!, $id: ID!) { order(orgId: $o, id: $id) { ` + body + ` } }`
	}
	vars := map[string]any{"o": s.org, "id": o.ID}

	// order(1) + 2 cycles (8) + number (10)... counted: order 1, customer 2, orders 3,
	// edges 4, node 5, customer 6, orders 7, edges 8, node 9, number 10.
	r := MustOK(t, srv.Post(t, s.member.AccessToken, query(cycle(2, "number")), vars))
	if !strings.Contains(r.Raw, `"number":1`) {
		t.Errorf("depth 10: %s", r.Raw)
	}
	// One level more: node 9, customer 10, name 11.
	r, stmts := srv.PostCounted(t, s.member.AccessToken, query(cycle(2, "customer { name }")), vars)
	WantCode(t, r, "DEPTH_LIMIT_EXCEEDED")
	if stmts != 0 {
		t.Errorf("the refused query cost %d statements, want 0", stmts)
	}
	if !strings.Contains(r.Raw, "depth 11") {
		t.Errorf("depth 11: %s", r.Raw)
	}
}
