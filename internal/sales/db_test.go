package sales_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/dbtest"
)

// These tests hold the orders' invariants on the database itself, bypassing
// the service: an order moves only along the legal transitions and changes
// nothing else; it and its lines stay in their organization and its currency;
// a line never takes more than the stock; the daily roll-up always equals
// what the orders say, in the organization's time zone of the moment.

// dbShop is an organization committed with its owner, a customer and
// products, inserted directly.
type dbShop struct {
	org, owner, customer uuid.UUID
	products             []dbProduct
	number               int64 // the last order number given out
}

type dbProduct struct {
	id    uuid.UUID
	sku   string
	price int64
	track bool
}

// newDBShop commits an organization with a product for each of stocks (a
// stock below zero: one that tracks no inventory), priced 100, 200, ...
func newDBShop(t *testing.T, stocks ...int) *dbShop {
	t.Helper()
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	s := &dbShop{org: dbtest.NewOrgTx(t, tx), owner: dbtest.NewUser(t, tx), customer: uuid.New()}
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, s.org, s.owner)
	dbtest.Exec(t, tx, `INSERT INTO customers (organization_id, id, name, created_at, updated_at) VALUES ($1, $2, 'Ada', now(), now())`,
		s.org, s.customer)
	for i, st := range stocks {
		p := dbProduct{id: uuid.New(), sku: fmt.Sprintf("P-%d", i+1), price: int64(100 * (i + 1)), track: st >= 0}
		dbtest.Exec(t, tx, `INSERT INTO products (organization_id, id, sku, name, price, track_inventory, created_at, updated_at)
			VALUES ($1, $2, $3, 'Product', $4, $5, now(), now())`, s.org, p.id, p.sku, p.price, p.track)
		if st > 0 {
			dbtest.Exec(t, tx, `INSERT INTO inventory_movements (organization_id, product_id, delta, reason, created_at)
				VALUES ($1, $2, $3, 'ADJUSTMENT', now())`, s.org, p.id, st)
		}
		s.products = append(s.products, p)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return s
}

// dbLine is a line of an order to insert: a product and a quantity.
type dbLine struct {
	product dbProduct
	qty     int
}

// dbOrder is an order to insert; the zero values of its fields are the shop's
// (its organization, customer and currency) and now.
type dbOrder struct {
	org, customer uuid.UUID
	currency      string
	status        string
	at            time.Time
	lines         []dbLine
}

// insert writes o PENDING with its lines (their trigger takes the stock) in
// one statement, as the store does, and returns its id.
func (s *dbShop) insert(o dbOrder) (uuid.UUID, error) {
	if o.org == uuid.Nil {
		o.org = s.org
	}
	if o.customer == uuid.Nil {
		o.customer = s.customer
	}
	if o.currency == "" {
		o.currency = "USD"
	}
	if o.status == "" {
		o.status = "PENDING"
	}
	if o.at.IsZero() {
		o.at = time.Now()
	}
	var (
		products []uuid.UUID
		skus     []string
		prices   []int64
		qtys     []int64
		tracks   []bool
		total    int64
	)
	for _, l := range o.lines {
		products, skus, prices = append(products, l.product.id), append(skus, l.product.sku), append(prices, l.product.price)
		qtys, tracks = append(qtys, int64(l.qty)), append(tracks, l.product.track)
		total += l.product.price * int64(l.qty)
	}
	s.number++
	id := uuid.New()
	_, err := database.DB.Exec(`
		WITH o AS (
			INSERT INTO orders (organization_id, id, number, customer_id, status, currency, subtotal, total, line_count, created_by, created_at,
				paid_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, CASE WHEN $5::text = 'PAID' THEN $10::timestamptz END)
			RETURNING organization_id, id)
		INSERT INTO order_lines (organization_id, order_id, line_no, product_id, sku, name, unit_price, quantity, line_total, track_inventory)
		SELECT o.organization_id, o.id, x.no, x.product, x.sku, 'Product', x.price, x.qty, x.price * x.qty, x.track
		FROM o, unnest($11::uuid[], $12::text[], $13::bigint[], $14::int[], $15::bool[]) WITH ORDINALITY AS x(product, sku, price, qty, track, no)`,
		o.org, id, s.number, o.customer, o.status, o.currency, total, len(o.lines), s.owner, o.at,
		pq.Array(products), pq.Array(skus), pq.Array(prices), pq.Array(qtys), pq.Array(tracks))
	return id, err
}

// mustInsert is insert of a one-line order of the first product, which must succeed.
func (s *dbShop) mustInsert(t *testing.T) uuid.UUID {
	t.Helper()
	id, err := s.insert(dbOrder{lines: []dbLine{{s.products[0], 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setStatus moves order id to status, stamping the transition's time, as the
// store does (restock for a refund).
func (s *dbShop) setStatus(id uuid.UUID, status string, restock bool) error {
	res, err := database.DB.Exec(`UPDATE orders SET status = $3::text, restocked = $4, updated_by = $5,
			paid_at = CASE WHEN $3::text = 'PAID' THEN now() ELSE paid_at END,
			fulfilled_at = CASE WHEN $3::text = 'FULFILLED' THEN now() ELSE fulfilled_at END,
			cancelled_at = CASE WHEN $3::text = 'CANCELLED' THEN now() ELSE cancelled_at END,
			refunded_at = CASE WHEN $3::text = 'REFUNDED' THEN now() ELSE refunded_at END
		WHERE organization_id = $1 AND id = $2`, s.org, id, status, restock, s.owner)
	if err == nil {
		if n, _ := res.RowsAffected(); n != 1 {
			err = fmt.Errorf("%d orders updated", n)
		}
	}
	return err
}

func (s *dbShop) status(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var st string
	if err := database.DB.Get(&st, `SELECT status FROM orders WHERE organization_id = $1 AND id = $2`, s.org, id); err != nil {
		t.Fatal(err)
	}
	return st
}

// dbStock is a product's stock and its ledger's sum, as "stock/ledger".
func dbStock(t *testing.T, org uuid.UUID, p dbProduct) string {
	t.Helper()
	var st, sum int
	if err := database.DB.QueryRow(`SELECT p.stock, coalesce((SELECT sum(delta) FROM inventory_movements m
		WHERE m.organization_id = p.organization_id AND m.product_id = p.id), 0)
		FROM products p WHERE p.organization_id = $1 AND p.id = $2`, org, p.id).Scan(&st, &sum); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d/%d", st, sum)
}

var statuses = []string{"PENDING", "PAID", "FULFILLED", "CANCELLED", "REFUNDED"}

// reach are the transitions that bring a new order to each status.
var reach = map[string][]string{
	"PENDING":   nil,
	"PAID":      {"PAID"},
	"FULFILLED": {"PAID", "FULFILLED"},
	"CANCELLED": {"CANCELLED"},
	"REFUNDED":  {"PAID", "REFUNDED"},
}

var legal = map[[2]string]bool{
	{"PENDING", "PAID"}: true, {"PENDING", "CANCELLED"}: true,
	{"PAID", "FULFILLED"}: true, {"PAID", "CANCELLED"}: true, {"PAID", "REFUNDED"}: true,
	{"FULFILLED", "REFUNDED"}: true,
}

func TestDBOrderStatusMovesOnlyAlongTheLegalTransitions(t *testing.T) {
	t.Parallel()
	s := newDBShop(t, 1000)
	for _, from := range statuses {
		for _, to := range statuses {
			if from == to {
				continue
			}
			id := s.mustInsert(t)
			for _, st := range reach[from] {
				if err := s.setStatus(id, st, false); err != nil {
					t.Fatalf("%s on the way to %s: %v", st, from, err)
				}
			}
			what := from + " -> " + to
			err := s.setStatus(id, to, false)
			if legal[[2]string{from, to}] {
				if err != nil {
					t.Errorf("%s: %v", what, err)
				} else if got := s.status(t, id); got != to {
					t.Errorf("%s: the order is %s", what, got)
				}
				continue
			}
			dbtest.WantViolation(t, err, what, "23514", "orders_status_transition")
			if got := s.status(t, id); got != from {
				t.Errorf("%s refused: the order is %s", what, got)
			}
		}
	}
	// Each of the 20 orders took one; the 6 cancelled gave theirs back.
	if got := dbStock(t, s.org, s.products[0]); got != "986/986" {
		t.Errorf("stock/ledger %s, want 986/986", got)
	}

	_, err := s.insert(dbOrder{status: "PAID", lines: []dbLine{{s.products[0], 1}}})
	dbtest.WantViolation(t, err, "an order inserted PAID", "23514", "orders_status_transition")
}

func TestDBOrderChangesOnlyItsStatus(t *testing.T) {
	t.Parallel()
	s := newDBShop(t, 10)
	id := s.mustInsert(t)
	number := s.number
	other := uuid.New()
	dbtest.Exec(t, database.DB, `INSERT INTO customers (organization_id, id, name, created_at, updated_at) VALUES ($1, $2, 'Bob', now(), now())`,
		s.org, other)
	for _, c := range []struct{ what, set string }{
		{"the total", "total = total + 1"},
		{"the subtotal and total", "subtotal = subtotal + 1, total = total + 1"},
		{"the customer", "customer_id = '" + other.String() + "'"},
		{"the number", "number = number + 1000"},
		{"the placement time", "created_at = created_at - interval '1 day'"},
		{"the currency", "currency = 'EUR'"},
	} {
		_, err := database.DB.Exec(`UPDATE orders SET `+c.set+` WHERE organization_id = $1 AND id = $2`, s.org, id)
		dbtest.WantViolation(t, err, "changing "+c.what, "23514", "orders_immutable")
	}
	_, err := database.DB.Exec(`UPDATE order_lines SET quantity = 5, line_total = unit_price * 5 WHERE organization_id = $1 AND order_id = $2`, s.org, id)
	dbtest.WantViolation(t, err, "changing a line", "23514", "order_lines_immutable")
	_, err = database.DB.Exec(`DELETE FROM order_lines WHERE organization_id = $1 AND order_id = $2`, s.org, id)
	dbtest.WantViolation(t, err, "deleting a line", "23514", "order_lines_kept")
	_, err = database.DB.Exec(`DELETE FROM orders WHERE organization_id = $1 AND id = $2`, s.org, id)
	dbtest.WantViolation(t, err, "deleting an order", "23514", "orders_kept")

	// What a transition set stays: a refund that did not restock cannot restock later.
	refunded := s.mustInsert(t)
	if err := s.setStatus(refunded, "PAID", false); err != nil {
		t.Fatal(err)
	}
	_, err = database.DB.Exec(`UPDATE orders SET paid_at = paid_at - interval '1 hour' WHERE organization_id = $1 AND id = $2`, s.org, refunded)
	dbtest.WantViolation(t, err, "moving the payment time", "23514", "orders_immutable")
	if err := s.setStatus(refunded, "REFUNDED", false); err != nil {
		t.Fatal(err)
	}
	_, err = database.DB.Exec(`UPDATE orders SET restocked = true WHERE organization_id = $1 AND id = $2`, s.org, refunded)
	dbtest.WantViolation(t, err, "restocking after the refund", "23514", "orders_immutable")
	var got string
	if err := database.DB.Get(&got, `SELECT concat_ws(' ', o.status, o.total, o.customer_id = $3, o.number, l.quantity, l.line_total)
		FROM orders o JOIN order_lines l USING (organization_id) WHERE l.order_id = o.id AND o.organization_id = $1 AND o.id = $2`,
		s.org, id, s.customer); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("PENDING 100 t %d 1 100", number); got != want {
		t.Errorf("after the refused changes: %s, want %s", got, want)
	}
	if got := dbStock(t, s.org, s.products[0]); got != "8/8" {
		t.Errorf("stock/ledger %s, want 8/8", got)
	}
}

func TestDBOrdersStayInTheirOrganizationAndCurrency(t *testing.T) {
	t.Parallel()
	a, b := newDBShop(t, 10), newDBShop(t, 10)
	orders := func(s *dbShop) int {
		return count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, s.org)
	}

	_, err := a.insert(dbOrder{lines: []dbLine{{a.products[0], 1}, {b.products[0], 1}}})
	dbtest.WantViolation(t, err, "A's order of B's product", "23503", "order_lines_product_fkey")
	_, err = a.insert(dbOrder{customer: b.customer, lines: []dbLine{{a.products[0], 1}}})
	dbtest.WantViolation(t, err, "A's order for B's customer", "23503", "orders_customer_fkey")
	_, err = a.insert(dbOrder{currency: "EUR", lines: []dbLine{{a.products[0], 1}}})
	dbtest.WantViolation(t, err, "A's order in another currency", "23503", "orders_currency_fkey")
	if got := fmt.Sprintf("A: %d orders, stock/ledger %s; B: stock/ledger %s", orders(a), dbStock(t, a.org, a.products[0]),
		dbStock(t, b.org, b.products[0])); got != "A: 0 orders, stock/ledger 10/10; B: stock/ledger 10/10" {
		t.Errorf("after the refused orders: %s", got)
	}

	// The currency of an organization with an order cannot change; without, it can.
	a.mustInsert(t)
	_, err = database.DB.Exec(`UPDATE organizations SET currency = 'EUR' WHERE id = $1`, a.org)
	dbtest.WantViolation(t, err, "a currency change under an order", "23503", "orders_currency_fkey")
	if _, err := database.DB.Exec(`UPDATE organizations SET currency = 'EUR' WHERE id = $1`, b.org); err != nil {
		t.Errorf("a currency change without orders: %v", err)
	}
	var currencies string
	if err := database.DB.Get(&currencies, `SELECT string_agg(currency, ' ' ORDER BY id = $2) FROM organizations WHERE id IN ($1, $2)`,
		a.org, b.org); err != nil {
		t.Fatal(err)
	}
	if currencies != "USD EUR" {
		t.Errorf("currencies of A and B: %s, want USD EUR", currencies)
	}
}

func TestDBOrderLineNeverTakesMoreThanTheStock(t *testing.T) {
	t.Parallel()
	s := newDBShop(t, 3, 5)
	_, err := s.insert(dbOrder{lines: []dbLine{{s.products[1], 2}, {s.products[0], 4}}})
	dbtest.WantViolation(t, err, "a line of 4 with 3 in stock", "23514", "products_stock_check")
	got := fmt.Sprintf("%d orders, %d lines, %d movements, stock/ledger %s and %s",
		count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, s.org),
		count(t, `SELECT count(*) FROM order_lines WHERE organization_id = $1`, s.org),
		count(t, `SELECT count(*) FROM inventory_movements WHERE organization_id = $1 AND order_id IS NOT NULL`, s.org),
		dbStock(t, s.org, s.products[0]), dbStock(t, s.org, s.products[1]))
	if want := "0 orders, 0 lines, 0 movements, stock/ledger 3/3 and 5/5"; got != want {
		t.Errorf("after the refused order: %s, want %s", got, want)
	}
}

// TestDBSalesRollupFollowsTheOrders: after a random mix of orders placed over
// several days, moving along the transitions interleaved, the daily roll-up
// equals a count made from the orders themselves; and again after each change
// of the organization's time zone (the rebuild), and after more transitions
// in the new zone.
func TestDBSalesRollupFollowsTheOrders(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	s := newDBShop(t, 1000, 1000, 1000, -1)

	// The status paths an order may take (a refund restocks or not).
	paths := [][]string{nil, {"PAID"}, {"PAID", "FULFILLED"}, {"CANCELLED"}, {"PAID", "CANCELLED"},
		{"PAID", "REFUNDED"}, {"PAID", "FULFILLED", "REFUNDED"}}
	type plan struct {
		id      uuid.UUID
		steps   []string
		restock bool
		late    bool // its last step waits for the new time zone
	}
	// Around the United States' change to summer time (9 March 2025), at any minute of the day in UTC.
	base := time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC)
	plans := make([]*plan, 60)
	for i := range plans {
		at := base.Add(time.Duration(rng.IntN(5*24*60)) * time.Minute)
		if i == 0 {
			at = base.Add(36 * time.Hour) // noon: another day in Kiritimati (UTC+14) than in UTC
		}
		var lines []dbLine
		for _, k := range rng.Perm(len(s.products))[:1+rng.IntN(3)] {
			lines = append(lines, dbLine{s.products[k], 1 + rng.IntN(5)})
		}
		id, err := s.insert(dbOrder{at: at, lines: lines})
		if err != nil {
			t.Fatal(err)
		}
		p := &plan{id: id, steps: paths[rng.IntN(len(paths))], restock: rng.IntN(2) == 0, late: i%3 == 2}
		if i == 0 {
			p.steps = []string{"PAID"}
		}
		plans[i] = p
	}
	// step moves a random order with a step left (at most upTo steps along its
	// path), until none has: the orders' changes interleave.
	done := make([]int, len(plans)) // the steps each order made
	step := func(upTo func(p *plan) int) {
		t.Helper()
		for {
			var open []int
			for i, p := range plans {
				if done[i] < min(len(p.steps), upTo(p)) {
					open = append(open, i)
				}
			}
			if len(open) == 0 {
				return
			}
			i := open[rng.IntN(len(open))]
			p := plans[i]
			to := p.steps[done[i]]
			if err := s.setStatus(p.id, to, p.restock && to == "REFUNDED"); err != nil {
				t.Fatalf("order %d to %s: %v", i, to, err)
			}
			done[i]++
		}
	}
	step(func(p *plan) int {
		if p.late {
			return len(p.steps) - 1
		}
		return len(p.steps)
	})
	utc := wantRollup(t, s.org)
	if !strings.Contains(utc, "2025-03-08") {
		t.Fatalf("no sales on 2025-03-08 in UTC (the first order, paid, was placed at noon):\n%s", utc)
	}

	dbtest.Exec(t, database.DB, `UPDATE organizations SET time_zone = 'Pacific/Kiritimati' WHERE id = $1`, s.org)
	kiritimati := wantRollup(t, s.org)
	if kiritimati == utc {
		t.Errorf("the roll-up did not change with the time zone:\n%s", utc)
	}
	step(func(p *plan) int { return len(p.steps) })
	wantRollup(t, s.org)
	dbtest.Exec(t, database.DB, `UPDATE organizations SET time_zone = 'America/Los_Angeles' WHERE id = $1`, s.org)
	wantRollup(t, s.org)

	// Every order got where its path led.
	for i, p := range plans {
		want := "PENDING"
		if len(p.steps) > 0 {
			want = p.steps[len(p.steps)-1]
		}
		if got := s.status(t, p.id); got != want {
			t.Errorf("order %d is %s, want %s", i, got, want)
		}
	}
	for _, p := range s.products[:3] {
		if got := dbStock(t, s.org, p); strings.Split(got, "/")[0] != strings.Split(got, "/")[1] {
			t.Errorf("stock/ledger %s", got)
		}
	}
}

// wantRollup fails unless org's daily roll-up (its rows that count something)
// equals the sales recounted from its orders and their lines, by local day
// in the organization's time zone; it returns the roll-up's days.
func wantRollup(t *testing.T, org uuid.UUID) string {
	t.Helper()
	read := func(query string) string {
		t.Helper()
		var rows []string
		if err := database.DB.Select(&rows, query, org); err != nil {
			t.Fatal(err)
		}
		return strings.Join(rows, "\n")
	}
	var zone string
	if err := database.DB.Get(&zone, `SELECT time_zone FROM organizations WHERE id = $1`, org); err != nil {
		t.Fatal(err)
	}
	days := read(`SELECT concat_ws(' ', day, orders, revenue) FROM sales_days
		WHERE organization_id = $1 AND (orders, revenue) <> (0, 0) ORDER BY day`)
	wantDays := read(`SELECT concat_ws(' ', day, count(*), sum(total)) FROM (
			SELECT (o.created_at AT TIME ZONE g.time_zone)::date AS day, o.total
			FROM orders o JOIN organizations g ON g.id = o.organization_id
			WHERE o.organization_id = $1 AND o.status IN ('PAID', 'FULFILLED')) s
		GROUP BY day ORDER BY day`)
	if days != wantDays {
		t.Errorf("in %s, sales_days (day orders revenue):\n%s\nwant, from the orders:\n%s", zone, days, wantDays)
	}
	products := read(`SELECT concat_ws(' ', day, product_id, quantity, revenue) FROM sales_day_products
		WHERE organization_id = $1 AND (quantity, revenue) <> (0, 0) ORDER BY day, product_id`)
	wantProducts := read(`SELECT concat_ws(' ', day, product_id, sum(quantity), sum(line_total)) FROM (
			SELECT (o.created_at AT TIME ZONE g.time_zone)::date AS day, l.product_id, l.quantity, l.line_total
			FROM orders o JOIN organizations g ON g.id = o.organization_id
			JOIN order_lines l ON l.organization_id = o.organization_id AND l.order_id = o.id
			WHERE o.organization_id = $1 AND o.status IN ('PAID', 'FULFILLED')) s
		GROUP BY day, product_id ORDER BY day, product_id`)
	if products != wantProducts {
		t.Errorf("in %s, sales_day_products (day product quantity revenue):\n%s\nwant, from the orders:\n%s", zone, products, wantProducts)
	}
	if days == "" {
		t.Errorf("in %s: no sales at all", zone)
	}
	return days
}
