package sales_test

import (
	"testing"
	"time"

	. "tenantgraph/internal/apitest"
)

// TestOrdersListFilters: the orders list filters by status, customer and
// placement time (placedAfter inclusive, placedBefore exclusive), newest
// first (placement time), and pages through a cursor.
func TestOrdersListFilters(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-list")
	bo := s.newCustomer(t, "Bo")
	p := s.newProduct(t, "P", 100, -1)
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 6 {
		id := s.placedAt(t, base.Add(time.Duration(i)*24*time.Hour), p, "P", 1, 100)
		if i%2 == 1 {
			MustOK(t, s.transition(t, s.admin, "markOrderPaid", id, ""))
		}
	}
	r := MustOK(t, srv.Post(t, s.member.AccessToken, createOrder, map[string]any{"o": s.org,
		"in": map[string]any{"customerId": bo, "lines": []any{line(p, 1)}}}))
	var bos struct{ CreateOrder orderOut }
	r.Decode(t, &bos)

	list := func(vars map[string]any) []int {
		t.Helper()
		vars["o"] = s.org
		r := MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!, $st: OrderStatus, $c: ID, $a: Time, $b: Time, $first: Int, $after: String) {
			orders(orgId: $o, status: $st, customerId: $c, placedAfter: $a, placedBefore: $b, first: $first, after: $after) {
				totalCount pageInfo { endCursor } edges { node { number } } } }`, vars))
		var out struct {
			Orders struct {
				TotalCount int
				PageInfo   struct{ EndCursor string }
				Edges      []struct{ Node struct{ Number int } }
			}
		}
		r.Decode(t, &out)
		var ns []int
		for _, e := range out.Orders.Edges {
			ns = append(ns, e.Node.Number)
		}
		if vars["first"] == nil && len(ns) != out.Orders.TotalCount {
			t.Errorf("totalCount %d, %d listed", out.Orders.TotalCount, len(ns))
		}
		return ns
	}
	eq := func(name string, got []int, want ...int) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", name, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", name, got, want)
				return
			}
		}
	}
	eq("all", list(map[string]any{}), 7, 6, 5, 4, 3, 2, 1)
	eq("paid", list(map[string]any{"st": "PAID"}), 6, 4, 2)
	eq("Bo's", list(map[string]any{"c": bo}), bos.CreateOrder.Number)
	eq("placed May 2 to May 4", list(map[string]any{"a": "2026-05-02T12:00:00Z", "b": "2026-05-04T12:00:00Z"}), 3, 2)
	eq("pending placed from May 3", list(map[string]any{"st": "PENDING", "a": "2026-05-03T00:00:00Z", "b": "2026-05-31T00:00:00Z"}), 5, 3)
	WantCode(t, srv.Post(t, s.member.AccessToken, `query($o: ID!) { orders(orgId: $o, placedAfter: "2026-05-04T00:00:00Z", placedBefore: "2026-05-04T00:00:00Z") { totalCount } }`,
		map[string]any{"o": s.org}), "BAD_USER_INPUT")
}

// TestRefundAndCreateWithTheSameKey: a refund retried with its idempotency
// key answers the refunded order again (no CONFLICT for the status it already
// has, nothing restocked twice); a createOrder key is the organization's:
// another member sending the same request with it gets the same order.
func TestRefundAndCreateWithTheSameKey(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-key")
	p := s.newProduct(t, "P", 100, 10)
	o := s.mustOrder(t, s.member, line(p, 4))
	MustOK(t, s.transition(t, s.admin, "markOrderPaid", o.ID, ""))
	for range 2 {
		r := MustOK(t, s.transition(t, s.admin, "refundOrder", o.ID, `, restock: true, idempotencyKey: "refund-1"`))
		var out struct{ RefundOrder orderOut }
		r.Decode(t, &out)
		if out.RefundOrder.Status != "REFUNDED" || !out.RefundOrder.Restocked {
			t.Fatalf("refund = %+v", out.RefundOrder)
		}
	}
	wantStock(t, s.org, p, 10)
	if n := count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'order.refunded'`, s.org); n != 1 {
		t.Errorf("%d refund events, want 1", n)
	}

	key := "shared-key"
	first := MustOK(t, s.order(t, s.member, &key, line(p, 1)))
	second := MustOK(t, s.order(t, s.admin, &key, line(p, 1)))
	var a, b struct{ CreateOrder orderOut }
	first.Decode(t, &a)
	second.Decode(t, &b)
	if a.CreateOrder.ID != b.CreateOrder.ID {
		t.Errorf("the same key and request by two members made two orders: %d and %d", a.CreateOrder.Number, b.CreateOrder.Number)
	}
	r := s.order(t, s.admin, &key, line(p, 2))
	WantCode(t, r, "CONFLICT")
	if r.Field() != "idempotencyKey" {
		t.Errorf("field %q", r.Field())
	}
	wantStock(t, s.org, p, 9)

	// After the kit's key expired, a retry still finds its order, even though
	// the catalog would refuse it today (out of stock).
	late := "late-key"
	placed := MustOK(t, s.order(t, s.member, &late, line(p, 9)))
	if _, err := srv.DB.Exec(`DELETE FROM idempotency_keys WHERE organization_id = $1 AND key = $2`, s.org, late); err != nil {
		t.Fatal(err)
	}
	retried := MustOK(t, s.order(t, s.member, &late, line(p, 9)))
	placed.Decode(t, &a)
	retried.Decode(t, &b)
	if a.CreateOrder.ID != b.CreateOrder.ID {
		t.Errorf("a late retry made order %d after %d", b.CreateOrder.Number, a.CreateOrder.Number)
	}
	WantCode(t, s.order(t, s.member, &late, line(p, 8)), "CONFLICT")
	wantStock(t, s.org, p, 0)
}
