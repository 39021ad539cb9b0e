package sales_test

import (
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

// TestOrderLifecycle: an order is priced from the catalog, takes its stock,
// keeps its lines when the catalog changes, and moves along the legal
// transitions only; a cancellation gives the stock back, a refund only when
// it restocks. Every change writes one audit event.
func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-life")
	widget := s.newProduct(t, "W-1", 1250, 10)
	service := s.newProduct(t, "SVC", 9900, -1)

	o := s.mustOrder(t, s.member, line(widget, 3), line(service, 1))
	if o.Number != 1 || o.Status != "PENDING" || o.Subtotal.Amount != "13650" || o.Total.Amount != "13650" ||
		o.Subtotal.Formatted != "USD 136.50" || o.Customer.ID != s.customer || o.CreatedBy == nil || o.CreatedBy.ID != s.member.UserID {
		t.Fatalf("order = %+v", o)
	}
	if len(o.Lines) != 2 || o.Lines[0].LineNo != 1 || o.Lines[0].Sku != "W-1" || o.Lines[0].LineTotal.Amount != "3750" ||
		o.Lines[0].Product.Stock != 7 || o.Lines[1].Sku != "SVC" || o.Lines[1].UnitPrice.Amount != "9900" {
		t.Fatalf("lines = %+v", o.Lines)
	}
	wantStock(t, s.org, widget, 7)
	wantStock(t, s.org, service, 0)

	// The catalog changes; the order keeps what was sold.
	if _, err := srv.DB.Exec(`UPDATE products SET price = 1, name = 'Renamed' WHERE organization_id = $1 AND id = $2`, s.org, widget); err != nil {
		t.Fatal(err)
	}
	r := MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!, $n: Int!) { orderByNumber(orgId: $o, number: $n) { `+orderFields+` } }`,
		map[string]any{"o": s.org, "n": 1}))
	var byNumber struct{ OrderByNumber orderOut }
	r.Decode(t, &byNumber)
	if l := byNumber.OrderByNumber.Lines[0]; l.Name != "Product W-1" || l.UnitPrice.Amount != "1250" {
		t.Errorf("line after the catalog changed = %+v", l)
	}

	// A MEMBER may not move it; fulfilling a PENDING order is CONFLICT.
	WantCode(t, s.transition(t, s.member, "markOrderPaid", o.ID, ""), "FORBIDDEN")
	WantCode(t, s.transition(t, s.admin, "fulfillOrder", o.ID, ""), "CONFLICT")
	WantCode(t, s.transition(t, s.admin, "refundOrder", o.ID, ""), "CONFLICT")

	MustOK(t, s.transition(t, s.admin, "markOrderPaid", o.ID, ""))
	WantCode(t, s.transition(t, s.admin, "markOrderPaid", o.ID, ""), "CONFLICT")
	r = MustOK(t, s.transition(t, s.admin, "fulfillOrder", o.ID, ""))
	var out struct{ FulfillOrder orderOut }
	r.Decode(t, &out)
	if f := out.FulfillOrder; f.Status != "FULFILLED" || f.PaidAt == nil || f.FulfilledAt == nil || f.CancelledAt != nil {
		t.Fatalf("fulfilled = %+v", f)
	}
	WantCode(t, s.transition(t, s.admin, "cancelOrder", o.ID, ""), "CONFLICT")

	// A refund without restock leaves the stock; lifetime value drops to zero.
	r = MustOK(t, s.transition(t, s.owner, "refundOrder", o.ID, ""))
	var refunded struct{ RefundOrder orderOut }
	r.Decode(t, &refunded)
	if refunded.RefundOrder.Status != "REFUNDED" || refunded.RefundOrder.Restocked {
		t.Fatalf("refunded = %+v", refunded.RefundOrder)
	}
	wantStock(t, s.org, widget, 7)

	// A cancelled order gives its stock back.
	o2 := s.mustOrder(t, s.member, line(widget, 5))
	wantStock(t, s.org, widget, 2)
	MustOK(t, s.transition(t, s.admin, "cancelOrder", o2.ID, ""))
	wantStock(t, s.org, widget, 7)
	WantCode(t, s.transition(t, s.admin, "markOrderPaid", o2.ID, ""), "CONFLICT")

	// A refund that restocks gives it back too.
	o3 := s.mustOrder(t, s.member, line(widget, 4))
	MustOK(t, s.transition(t, s.admin, "markOrderPaid", o3.ID, ""))
	r = MustOK(t, s.transition(t, s.admin, "refundOrder", o3.ID, ", restock: true"))
	r.Decode(t, &refunded)
	if !refunded.RefundOrder.Restocked {
		t.Errorf("refund with restock: restocked false")
	}
	wantStock(t, s.org, widget, 7)
	if o3.Number != 3 {
		t.Errorf("third order's number = %d, want 3", o3.Number)
	}

	for action, want := range map[string]int{"order.created": 3, "order.paid": 2, "order.fulfilled": 1, "order.cancelled": 1, "order.refunded": 2} {
		if n := count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = $2`, s.org, action); n != want {
			t.Errorf("%d %s events, want %d", n, action, want)
		}
	}
	var froms []string
	if err := srv.DB.Select(&froms, `SELECT action || ':' || (metadata->>'from') FROM audit_events
		WHERE organization_id = $1 AND action IN ('order.paid', 'order.fulfilled', 'order.cancelled', 'order.refunded') ORDER BY created_at, id`,
		s.org); err != nil {
		t.Fatal(err)
	}
	if got, want := fmtList(froms), "[order.paid:PENDING order.fulfilled:PAID order.refunded:FULFILLED order.cancelled:PENDING order.paid:PENDING order.refunded:PAID]"; got != want {
		t.Errorf("transitions audited: %s, want %s", got, want)
	}
	var reasons []string
	if err := srv.DB.Select(&reasons, `SELECT reason || ':' || delta FROM inventory_movements WHERE organization_id = $1 AND product_id = $2 ORDER BY id`,
		s.org, widget); err != nil {
		t.Fatal(err)
	}
	want := "[ADJUSTMENT:10 ORDER:-3 ORDER:-5 CANCEL:5 ORDER:-4 REFUND_RESTOCK:4]"
	if got := fmtList(reasons); got != want {
		t.Errorf("ledger = %s, want %s", got, want)
	}
}

// TestCreateOrderRefusals: every refusal names its field, and changes nothing.
func TestCreateOrderRefusals(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-refuse")
	other := newShop(t, "ord-refuse-other")
	widget := s.newProduct(t, "W-1", 500, 2)
	gadget := s.newProduct(t, "G-1", 700, 5)
	archived := s.newProduct(t, "OLD", 100, 5)
	if _, err := srv.DB.Exec(`UPDATE products SET archived_at = now() WHERE organization_id = $1 AND id = $2`, s.org, archived); err != nil {
		t.Fatal(err)
	}
	foreign := other.newProduct(t, "F-1", 100, 5)
	thing := s.newProduct(t, "T-1", 100, 4)
	archivedCustomer := s.newCustomer(t, "Gone")
	if _, err := srv.DB.Exec(`UPDATE customers SET archived_at = now() WHERE organization_id = $1 AND id = $2`, s.org, archivedCustomer); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, code, field string
		in                map[string]any
	}{
		{"not enough stock on the third line", "CONFLICT", "input.lines[2].quantity",
			s.orderInput(line(gadget, 1), line(thing, 4), line(widget, 3))},
		{"no lines", "BAD_USER_INPUT", "input.lines", map[string]any{"customerId": s.customer, "lines": []any{}}},
		{"zero quantity", "BAD_USER_INPUT", "input.lines[0].quantity", s.orderInput(line(widget, 0))},
		{"too many", "BAD_USER_INPUT", "input.lines[0].quantity", s.orderInput(line(widget, 10001))},
		{"a product twice", "BAD_USER_INPUT", "input.lines[1].productId", s.orderInput(line(widget, 1), line(widget, 1))},
		{"archived product", "CONFLICT", "input.lines[1].productId", s.orderInput(line(gadget, 1), line(archived, 1))},
		{"another organization's product", "NOT_FOUND", "input.lines[0].productId", s.orderInput(line(foreign, 1))},
		{"unknown product", "NOT_FOUND", "input.lines[0].productId", s.orderInput(line(uuid.New(), 1))},
		{"archived customer", "CONFLICT", "input.customerId",
			map[string]any{"customerId": archivedCustomer, "lines": []any{line(widget, 1)}}},
		{"another organization's customer", "NOT_FOUND", "input.customerId",
			map[string]any{"customerId": other.customer, "lines": []any{line(widget, 1)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := srv.Post(t, s.member.AccessToken, createOrder, map[string]any{"o": s.org, "in": c.in})
			WantCode(t, r, c.code)
			if r.Field() != c.field {
				t.Errorf("field = %q, want %q", r.Field(), c.field)
			}
		})
	}
	if n := count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, s.org); n != 0 {
		t.Errorf("%d orders written by refused requests", n)
	}
	wantStock(t, s.org, widget, 2)
	wantStock(t, s.org, gadget, 5)
	if n := count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'order.created'`, s.org); n != 0 {
		t.Errorf("%d audit events from refused requests", n)
	}
}

func fmtList(xs []string) string {
	out := "["
	for i, x := range xs {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
