package sales_test

import (
	"testing"

	. "tenantgraph/internal/apitest"
)

// TestCrossTenantOrderIDsAreNotFound: an ADMIN of both A and B, acting in A,
// cannot reach B's orders, products or customers by id: NOT_FOUND, and B's
// order, stock and ledger are unchanged.
func TestCrossTenantOrderIDsAreNotFound(t *testing.T) {
	t.Parallel()
	a, b := newShop(t, "ord-xa"), newShop(t, "ord-xb")
	bridge := srv.AddMember(t, a.owner, a.org, "ADMIN", "ord-bridge")
	_, tok := srv.Invite(t, b.owner, b.org, bridge.Email, "ADMIN")
	srv.Accept(t, bridge, tok)
	pa, pb := a.newProduct(t, "PA", 100, 5), b.newProduct(t, "PB", 100, 5)
	ob := b.mustOrder(t, b.member, line(pb, 2))

	inA := func(query string, vars map[string]any) Response {
		vars["o"] = a.org
		return srv.Post(t, bridge.AccessToken, query, vars)
	}
	WantCode(t, inA(`query($o: ID!, $id: ID!) { order(orgId: $o, id: $id) { id } }`, map[string]any{"id": ob.ID}), "NOT_FOUND")
	for _, op := range []string{"markOrderPaid", "cancelOrder", "fulfillOrder", "refundOrder"} {
		WantCode(t, inA(`mutation($o: ID!, $id: ID!) { `+op+`(orgId: $o, id: $id) { id } }`, map[string]any{"id": ob.ID}), "NOT_FOUND")
	}
	r := inA(createOrder, map[string]any{"in": map[string]any{"customerId": b.customer, "lines": []any{line(pa, 1)}}})
	WantCode(t, r, "NOT_FOUND")
	if r.Field() != "input.customerId" {
		t.Errorf("another organization's customer: field %q", r.Field())
	}
	r = inA(createOrder, map[string]any{"in": map[string]any{"customerId": a.customer, "lines": []any{line(pb, 1)}}})
	WantCode(t, r, "NOT_FOUND")
	r = MustOK(t, inA(`query($o: ID!, $c: ID!) { orders(orgId: $o, customerId: $c) { totalCount } }`, map[string]any{"c": b.customer}))
	var out struct{ Orders struct{ TotalCount int } }
	r.Decode(t, &out)
	if out.Orders.TotalCount != 0 {
		t.Errorf("A's orders of B's customer: %d", out.Orders.TotalCount)
	}

	var status string
	if err := srv.DB.Get(&status, `SELECT status FROM orders WHERE organization_id = $1 AND id = $2`, b.org, ob.ID); err != nil || status != "PENDING" {
		t.Errorf("B's order: %q (%v)", status, err)
	}
	wantStock(t, b.org, pb, 3)
	wantStock(t, a.org, pa, 5)
	if n := count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, a.org); n != 0 {
		t.Errorf("%d orders in A", n)
	}
}
