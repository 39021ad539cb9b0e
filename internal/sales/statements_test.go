package sales_test

import (
	"fmt"
	"testing"

	. "tenantgraph/internal/apitest"
)

const ordersPageQuery = `query($o: ID!, $n: Int) { orders(orgId: $o, first: $n) { edges { node {
	number customer { name } createdBy { email } lines { sku product { sku stock } } } } } }`

// TestOrdersPageCostsConstantStatements: a page of orders with their
// customers, creators and lines' products costs the same statements for 5
// orders as for 50: the membership, the orders with their lines, then one
// batch each of customers, users and products (5).
func TestOrdersPageCostsConstantStatements(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-stmt")
	products := [3]any{}
	for i := range products {
		products[i] = s.newProduct(t, fmt.Sprintf("P-%d", i), int64(100*(i+1)), -1)
	}
	customers := []any{s.customer, s.newCustomer(t, "Bo"), s.newCustomer(t, "Cy")}
	users := []any{s.owner.UserID, s.admin.UserID, s.member.UserID}
	// 60 orders of 1 to 3 lines, inserted directly (fixtures).
	if _, err := srv.DB.Exec(`
		WITH n AS (INSERT INTO order_numbers (organization_id, last) VALUES ($1, 60)),
		o AS (
			INSERT INTO orders (organization_id, number, customer_id, status, currency, subtotal, total, line_count, created_by, created_at)
			SELECT $1, i, ($2::uuid[])[1 + i % 3], 'PENDING', 'USD', 0, 0, 1 + i % 3, ($3::uuid[])[1 + i % 3], now() - (60 - i) * interval '1 second'
			FROM generate_series(1, 60) AS i RETURNING id, number, line_count)
		INSERT INTO order_lines (organization_id, order_id, line_no, product_id, sku, name, unit_price, quantity, line_total, track_inventory)
		SELECT $1, o.id, j, ($4::uuid[])[j], 'P-' || (j - 1), 'P', 0, 1, 0, false FROM o CROSS JOIN generate_series(1, 3) AS j WHERE j <= o.line_count`,
		s.org, pqArray(customers), pqArray(users), pqArray(products[:])); err != nil {
		t.Fatal(err)
	}
	counts := map[int]int64{}
	for _, n := range []int{5, 50} {
		r, stmts := srv.PostCounted(t, s.member.AccessToken, ordersPageQuery, map[string]any{"o": s.org, "n": n})
		MustOK(t, r)
		var out struct {
			Orders struct {
				Edges []struct {
					Node struct {
						Number    int
						Customer  struct{ Name string }
						CreatedBy struct{ Email string }
						Lines     []struct {
							Sku     string
							Product struct{ Sku string }
						}
					}
				}
			}
		}
		r.Decode(t, &out)
		if len(out.Orders.Edges) != n {
			t.Fatalf("%d orders listed, want %d", len(out.Orders.Edges), n)
		}
		for _, e := range out.Orders.Edges {
			nd := e.Node
			if nd.Customer.Name == "" || nd.CreatedBy.Email == "" || len(nd.Lines) != 1+nd.Number%3 || nd.Lines[0].Product.Sku != "P-0" {
				t.Fatalf("order node = %+v", nd)
			}
		}
		if first := out.Orders.Edges[0].Node.Number; first != 60 {
			t.Errorf("first order listed is %d, want the newest, 60", first)
		}
		counts[n] = stmts
	}
	t.Logf("statements: %v", counts)
	if counts[5] != counts[50] || counts[50] != 5 {
		t.Errorf("statements for 5 and 50 orders: %d, %d (want 5 and 5)", counts[5], counts[50])
	}
}

// TestCreateOrderStatements: a 3-line order costs 7 statements (the
// membership, BEGIN, the gate's membership lock, the products locked and
// priced, the order with its number and lines (whose trigger takes the stock),
// the audit event, COMMIT); an idempotency key adds 2 (claim and result).
func TestCreateOrderStatements(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-stmt3")
	a, b, c := s.newProduct(t, "A", 100, 50), s.newProduct(t, "B", 200, 50), s.newProduct(t, "C", 300, -1)
	in := s.orderInput(line(a, 1), line(b, 2), line(c, 3))
	r, plain := srv.PostCounted(t, s.member.AccessToken, `mutation($o: ID!, $in: CreateOrderInput!, $k: String) {
		createOrder(orgId: $o, input: $in, idempotencyKey: $k) { number total { amount } lines { sku } } }`,
		map[string]any{"o": s.org, "in": in})
	MustOK(t, r)
	r, keyed := srv.PostCounted(t, s.member.AccessToken, `mutation($o: ID!, $in: CreateOrderInput!, $k: String) {
		createOrder(orgId: $o, input: $in, idempotencyKey: $k) { number total { amount } lines { sku } } }`,
		map[string]any{"o": s.org, "in": in, "k": "stmt-1"})
	MustOK(t, r)
	t.Logf("a 3-line createOrder: %d statements, %d with an idempotency key", plain, keyed)
	if plain != 7 || keyed != 9 {
		t.Errorf("a 3-line createOrder cost %d statements (want 7), %d with a key (want 9)", plain, keyed)
	}
}
