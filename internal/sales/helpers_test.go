package sales_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
)

// shop is an organization with its OWNER, an ADMIN and a MEMBER, a customer
// and products, inserted directly (fixtures: the catalog's own tests cover
// their creation).
type shop struct {
	org                  uuid.UUID
	owner, admin, member *Session
	customer             uuid.UUID
}

func newShop(t testing.TB, tag string) *shop {
	t.Helper()
	s := &shop{owner: srv.RegisterVerified(t, tag+"-owner")}
	s.org = srv.CreateOrg(t, s.owner, tag+" "+uuid.NewString()[:8])
	s.admin = srv.AddMember(t, s.owner, s.org, "ADMIN", tag+"-admin")
	s.member = srv.AddMember(t, s.owner, s.org, "MEMBER", tag+"-member")
	s.customer = s.newCustomer(t, "Ada")
	return s
}

func (s *shop) newCustomer(t testing.TB, name string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := srv.DB.Exec(`INSERT INTO customers (organization_id, id, name, created_at, updated_at) VALUES ($1, $2, $3, now(), now())`,
		s.org, id, name); err != nil {
		t.Fatal(err)
	}
	return id
}

// newProduct adds a product at price (minor units) with stock (a ledger
// movement); stock < 0 makes one that tracks no inventory.
func (s *shop) newProduct(t testing.TB, sku string, price int64, stock int) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := srv.DB.Exec(`INSERT INTO products (organization_id, id, sku, name, price, track_inventory, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, now(), now())`, s.org, id, sku, "Product "+sku, price, stock >= 0); err != nil {
		t.Fatal(err)
	}
	if stock > 0 {
		if _, err := srv.DB.Exec(`INSERT INTO inventory_movements (organization_id, product_id, delta, reason, created_at)
			VALUES ($1, $2, $3, 'ADJUSTMENT', now())`, s.org, id, stock); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

const orderFields = `id number status subtotal { amount currency formatted } total { amount }
	customer { id name } createdBy { id } restocked note
	lines { lineNo sku name quantity unitPrice { amount } lineTotal { amount } product { id stock } }
	createdAt paidAt fulfilledAt cancelledAt refundedAt`

type orderOut struct {
	ID       uuid.UUID
	Number   int
	Status   string
	Subtotal struct{ Amount, Currency, Formatted string }
	Total    struct{ Amount string }
	Customer struct {
		ID   uuid.UUID
		Name string
	}
	CreatedBy *struct{ ID uuid.UUID }
	Restocked bool
	Note      *string
	Lines     []struct {
		LineNo    int
		Sku, Name string
		Quantity  int
		UnitPrice struct{ Amount string }
		LineTotal struct{ Amount string }
		Product   struct {
			ID    uuid.UUID
			Stock int
		}
	}
	CreatedAt                                    string
	PaidAt, FulfilledAt, CancelledAt, RefundedAt *string
}

const createOrder = `mutation($o: ID!, $in: CreateOrderInput!, $k: String) {
	createOrder(orgId: $o, input: $in, idempotencyKey: $k) { ` + orderFields + ` } }`

// line is one line of createOrder's input.
func line(product uuid.UUID, qty int) map[string]any {
	return map[string]any{"productId": product, "quantity": qty}
}

// orderInput is createOrder's input for s's customer.
func (s *shop) orderInput(lines ...map[string]any) map[string]any {
	return map[string]any{"customerId": s.customer, "lines": lines}
}

// order places an order as sess and returns the response (not checked).
func (s *shop) order(t testing.TB, sess *Session, key *string, lines ...map[string]any) Response {
	t.Helper()
	vars := map[string]any{"o": s.org, "in": s.orderInput(lines...)}
	if key != nil {
		vars["k"] = *key
	}
	return srv.Post(t, sess.AccessToken, createOrder, vars)
}

// mustOrder places an order that must succeed.
func (s *shop) mustOrder(t testing.TB, sess *Session, lines ...map[string]any) orderOut {
	t.Helper()
	r := MustOK(t, s.order(t, sess, nil, lines...))
	var out struct{ CreateOrder orderOut }
	r.Decode(t, &out)
	return out.CreateOrder
}

// transition runs markOrderPaid, fulfillOrder, cancelOrder or refundOrder.
func (s *shop) transition(t testing.TB, sess *Session, op string, id uuid.UUID, extra string) Response {
	t.Helper()
	return srv.Post(t, sess.AccessToken, fmt.Sprintf(`mutation($o: ID!, $id: ID!) { %s(orgId: $o, id: $id%s) { %s } }`, op, extra, orderFields),
		map[string]any{"o": s.org, "id": id})
}

// stock returns a product's stock and the sum of its ledger, from the database.
func stock(t testing.TB, org, product uuid.UUID) (stock, ledger int) {
	t.Helper()
	if err := srv.DB.QueryRow(`SELECT p.stock, coalesce((SELECT sum(delta) FROM inventory_movements m
		WHERE m.organization_id = p.organization_id AND m.product_id = p.id), 0)
		FROM products p WHERE p.organization_id = $1 AND p.id = $2`, org, product).Scan(&stock, &ledger); err != nil {
		t.Fatal(err)
	}
	return stock, ledger
}

// wantStock fails unless the product's stock is want and equals its ledger's sum.
func wantStock(t testing.TB, org, product uuid.UUID, want int) {
	t.Helper()
	st, sum := stock(t, org, product)
	if st != want || sum != st {
		t.Errorf("stock %d, ledger sum %d: want both %d", st, sum, want)
	}
}

func count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func pqArray(v []any) any { return pq.Array(v) }
