package sales

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
)

// Store is the orders' SQL. Every method takes the organization first and
// every query is scoped by it.
type Store struct{}

// Constraint names the service maps to field errors.
const (
	customerFkey     = "orders_customer_fkey"
	customerArchived = "orders_customer_archived"
	currencyFkey     = "orders_currency_fkey"
	stockCheck       = "products_stock_check"
	transitionRule   = "orders_status_transition"
)

// orderFields are an order's columns (o) followed by its lines, by number,
// as one JSON array read from lines (order_lines, or the rows an insert
// returned): the one shape every statement of the store reads an order in.
func orderFields(lines string) string {
	return `o.organization_id, o.id, o.number, o.customer_id, o.status, o.currency, o.subtotal, o.total,
	o.note, o.restocked, o.created_by, o.created_at, o.paid_at, o.fulfilled_at, o.cancelled_at, o.refunded_at,
	(SELECT json_agg(json_build_object('organization_id', l.organization_id, 'line_no', l.line_no,
		'product_id', l.product_id, 'sku', l.sku, 'name', l.name, 'unit_price', l.unit_price,
		'quantity', l.quantity, 'line_total', l.line_total, 'currency', o.currency) ORDER BY l.line_no)
	 FROM ` + lines + `) AS lines`
}

// orderCols reads an order (o) with its lines.
var orderCols = orderFields("order_lines l WHERE l.organization_id = o.organization_id AND l.order_id = o.id")

// orderOrder is the orders list's order: newest first (placement time, then
// id). Every filter has an index in this order (migrations/00016), so a page
// is an index range scan whatever the filter picks: ordered by number, a
// placement range in the past walked the newest numbers first.
var orderOrder = page.Order{Col: "o.created_at", ID: "o.id", Dir: page.Desc}

// NewOrder is an order to insert, priced.
type NewOrder struct {
	CustomerID uuid.UUID
	Currency   string
	Subtotal   int64
	Note       *string
	Key        *string
	Hash       []byte
	By         uuid.UUID
	At         time.Time
	Lines      []NewLine
}

// NewLine is a priced line of a NewOrder.
type NewLine struct {
	ProductID      uuid.UUID
	Sku, Name      string
	UnitPrice      int64
	Quantity       int
	TrackInventory bool
}

// Insert writes an order with the organization's next number and its lines
// (whose trigger takes the stock), in one statement. An order with the same
// idempotency key already there writes nothing and returns nil.
func (Store) Insert(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, o *NewOrder) (*Order, error) {
	n := len(o.Lines)
	ids, skus, names := make([]uuid.UUID, n), make([]string, n), make([]string, n)
	prices, qtys, tracks := make([]int64, n), make([]int64, n), make([]bool, n)
	for i, l := range o.Lines {
		ids[i], skus[i], names[i], prices[i], qtys[i], tracks[i] = l.ProductID, l.Sku, l.Name, l.UnitPrice, int64(l.Quantity), l.TrackInventory
	}
	return db.GetOrNil[Order](ctx, q, `
		WITH n AS (
			INSERT INTO order_numbers AS c (organization_id, last) VALUES ($1, 1)
			ON CONFLICT (organization_id) DO UPDATE SET last = c.last + 1 RETURNING last),
		o AS (
			INSERT INTO orders (organization_id, number, customer_id, status, currency, subtotal, total, line_count,
				note, idempotency_key, request_hash, created_by, created_at)
			SELECT $1, n.last, $2, 'PENDING', $3, $4, $4, $5, $6, $7, $8, $9, $10 FROM n
			ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
			RETURNING *),
		l AS (
			INSERT INTO order_lines (organization_id, order_id, line_no, product_id, sku, name, unit_price, quantity,
				line_total, track_inventory)
			SELECT $1, o.id, x.no, x.product, x.sku, x.name, x.price, x.qty, x.price * x.qty, x.track
			FROM o, unnest($11::uuid[], $12::text[], $13::text[], $14::bigint[], $15::int[], $16::bool[])
				WITH ORDINALITY AS x(product, sku, name, price, qty, track, no)
			RETURNING *)
		SELECT `+orderFields("l")+`
		FROM o`,
		org, o.CustomerID, o.Currency, o.Subtotal, n, o.Note, o.Key, o.Hash, o.By, o.At,
		pq.Array(ids), pq.Array(skus), pq.Array(names), pq.Array(prices), pq.Array(qtys), pq.Array(tracks))
}

// ByKey returns org's order created with idempotency key, and the hash of
// the request that created it; nil when there is none.
func (Store) ByKey(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, key string) (*Order, []byte, error) {
	type keyed struct {
		Order
		Hash []byte `db:"request_hash"`
	}
	row, err := db.GetOrNil[keyed](ctx, q, `SELECT `+orderCols+`, o.request_hash FROM orders o
		WHERE o.organization_id = $1 AND o.idempotency_key = $2`, org, key)
	if row == nil || err != nil {
		return nil, nil, err
	}
	return &row.Order, row.Hash, nil
}

// Get returns org's order id; nil when org has none.
func (Store) Get(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Order, error) {
	return db.GetOrNil[Order](ctx, q, `SELECT `+orderCols+` FROM orders o WHERE o.organization_id = $1 AND o.id = $2`, org, id)
}

// ByNumber returns org's order number; nil when org has none.
func (Store) ByNumber(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, number int64) (*Order, error) {
	return db.GetOrNil[Order](ctx, q, `SELECT `+orderCols+` FROM orders o WHERE o.organization_id = $1 AND o.number = $2`, org, number)
}

// Transition moves org's order id to status when it stands in one of from,
// stamping the transition's time (and restocked, by), in one statement; the
// orders' trigger gives the stock back and keeps the roll-up. nil when the
// order is not there or not in one of from.
func (Store) Transition(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID, to Status, from []Status, restock bool, by uuid.UUID, at time.Time) (*Order, error) {
	fromText := make([]string, len(from))
	for i, s := range from {
		fromText[i] = string(s)
	}
	return db.GetOrNil[Order](ctx, q, `
		WITH o AS (
			UPDATE orders SET status = $3::text, restocked = $4, updated_by = $5,
				paid_at = CASE WHEN $3::text = 'PAID' THEN $6 ELSE paid_at END,
				fulfilled_at = CASE WHEN $3::text = 'FULFILLED' THEN $6 ELSE fulfilled_at END,
				cancelled_at = CASE WHEN $3::text = 'CANCELLED' THEN $6 ELSE cancelled_at END,
				refunded_at = CASE WHEN $3::text = 'REFUNDED' THEN $6 ELSE refunded_at END
			WHERE organization_id = $1 AND id = $2 AND status = ANY ($7::text[])
			RETURNING *)
		SELECT `+orderCols+` FROM o`, org, id, string(to), restock, by, at, pq.Array(fromText))
}

// where is an order list's filter: the statement's text depends on which
// filters are present, the values are parameters.
func where(org uuid.UUID, f Filter) (string, []any) {
	cond, args := "o.organization_id = $1", []any{org}
	add := func(sql string, v any) {
		args = append(args, v)
		cond += " AND " + sql + " $" + strconv.Itoa(len(args))
	}
	if f.Status != nil {
		add("o.status =", string(*f.Status))
	}
	if f.CustomerID != nil {
		add("o.customer_id =", *f.CustomerID)
	}
	if f.PlacedAfter != nil {
		add("o.created_at >=", *f.PlacedAfter)
	}
	if f.PlacedBefore != nil {
		add("o.created_at <", *f.PlacedBefore)
	}
	return cond, args
}

// filtered reports whether f narrows the list: its best plan then depends on
// the values (a rare status, a customer with few orders, a short period).
func (f Filter) filtered() bool {
	return f.Status != nil || f.CustomerID != nil || f.PlacedAfter != nil || f.PlacedBefore != nil
}

// Page returns up to limit of org's orders matching f after cur, newest first.
func (Store) Page(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, cur *page.Key[time.Time], limit int) ([]*Order, error) {
	cond, args := where(org, f)
	after, args := page.After(orderOrder, cur, args)
	args = append(args, limit)
	hint := ""
	if f.filtered() {
		hint = db.CustomPlan
	}
	var rows []*Order
	err := sqlx.SelectContext(ctx, q, &rows, hint+`SELECT `+orderCols+` FROM orders o
		WHERE `+cond+after+` ORDER BY `+orderOrder.By()+` LIMIT $`+strconv.Itoa(len(args)), args...)
	return rows, err
}

// Count counts org's orders matching f.
func (Store) Count(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter) (int, error) {
	cond, args := where(org, f)
	hint := ""
	if f.filtered() {
		hint = db.CustomPlan
	}
	var n int
	err := sqlx.GetContext(ctx, q, &n, hint+`SELECT count(*) FROM orders o WHERE `+cond, args...)
	return n, err
}

// CustomerPages returns the first limit orders (newest first) of each customer
// of keys, with one query.
func (Store) CustomerPages(ctx context.Context, q sqlx.QueryerContext, keys []CustomerKey, limit int) (map[CustomerKey][]*Order, error) {
	orgs, custs := split(keys)
	var rows []*Order
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT p.* FROM unnest($1::uuid[], $2::uuid[]) AS k(org, cust) CROSS JOIN LATERAL (
			SELECT `+orderCols+` FROM orders o
			WHERE o.organization_id = k.org AND o.customer_id = k.cust
			ORDER BY `+orderOrder.By()+` LIMIT $3
		) p`, orgs, custs, limit)
	if err != nil {
		return nil, err
	}
	out := make(map[CustomerKey][]*Order, len(keys))
	for _, o := range rows {
		k := CustomerKey{Org: o.OrganizationID, Customer: o.CustomerID}
		out[k] = append(out[k], o)
	}
	return out, nil
}

// CustomerCounts counts the orders of each customer of keys.
func (Store) CustomerCounts(ctx context.Context, q sqlx.QueryerContext, keys []CustomerKey) (map[CustomerKey]int, error) {
	orgs, custs := split(keys)
	var rows []struct {
		Org  uuid.UUID `db:"org"`
		Cust uuid.UUID `db:"cust"`
		N    int       `db:"n"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT k.org, k.cust, count(o.id) AS n FROM unnest($1::uuid[], $2::uuid[]) AS k(org, cust)
		LEFT JOIN orders o ON o.organization_id = k.org AND o.customer_id = k.cust
		GROUP BY k.org, k.cust`, orgs, custs)
	out := make(map[CustomerKey]int, len(rows))
	for _, r := range rows {
		out[CustomerKey{Org: r.Org, Customer: r.Cust}] = r.N
	}
	return out, err
}

// LifetimeValues returns, for each customer of keys, the total of its orders
// that count as sales, and its organization's currency, with one query.
func (Store) LifetimeValues(ctx context.Context, q sqlx.QueryerContext, keys []CustomerKey) (map[CustomerKey]Value, error) {
	orgs, custs := split(keys)
	var rows []struct {
		Org  uuid.UUID `db:"org"`
		Cust uuid.UUID `db:"cust"`
		Value
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT k.org, k.cust, org.currency,
			coalesce((SELECT sum(o.total) FROM orders o WHERE o.organization_id = k.org AND o.customer_id = k.cust
				AND o.status IN ('PAID', 'FULFILLED')), 0) AS amount
		FROM unnest($1::uuid[], $2::uuid[]) AS k(org, cust) JOIN organizations org ON org.id = k.org`,
		orgs, custs)
	out := make(map[CustomerKey]Value, len(rows))
	for _, r := range rows {
		out[CustomerKey{Org: r.Org, Customer: r.Cust}] = r.Value
	}
	return out, err
}

// Value is an amount with its currency, as a query reads it.
type Value struct {
	Amount   int64  `db:"amount"`
	Currency string `db:"currency"`
}

// SummaryDays returns every local day (in org's time zone) from the one from
// falls on through the one to falls on, with the sales the roll-up holds for
// it, and the organization's time zone and currency.
func (Store) SummaryDays(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, from, to time.Time) ([]*Day, string, string, error) {
	var rows []struct {
		Day
		TimeZone string `db:"time_zone"`
		Currency string `db:"currency"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT g.day::date AS day, coalesce(d.orders, 0) AS orders, coalesce(d.revenue, 0) AS revenue, o.time_zone, o.currency
		FROM organizations o
		CROSS JOIN generate_series(($2::timestamptz AT TIME ZONE o.time_zone)::date,
			($3::timestamptz AT TIME ZONE o.time_zone)::date, interval '1 day') AS g(day)
		LEFT JOIN sales_days d ON d.organization_id = o.id AND d.day = g.day::date
		WHERE o.id = $1
		ORDER BY g.day`, org, from, to)
	if err != nil || len(rows) == 0 {
		return nil, "", "", err
	}
	days := make([]*Day, len(rows))
	for i := range rows {
		days[i] = &rows[i].Day
	}
	return days, rows[0].TimeZone, rows[0].Currency, nil
}

// TopProducts returns the limit products with the most revenue over the local
// days from's through to's (by revenue, then quantity, then id), with their
// current SKU and name.
func (Store) TopProducts(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, from, to time.Time, limit int) ([]*ProductSales, error) {
	var rows []*ProductSales
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT s.organization_id, s.product_id, p.sku, p.name, s.quantity, s.revenue
		FROM (
			SELECT d.organization_id, d.product_id, sum(d.quantity)::bigint AS quantity, sum(d.revenue)::bigint AS revenue
			FROM organizations o JOIN sales_day_products d ON d.organization_id = o.id
			WHERE o.id = $1 AND d.day BETWEEN ($2::timestamptz AT TIME ZONE o.time_zone)::date
				AND ($3::timestamptz AT TIME ZONE o.time_zone)::date
			GROUP BY d.organization_id, d.product_id
			HAVING sum(d.quantity) > 0
			ORDER BY revenue DESC, quantity DESC, d.product_id LIMIT $4
		) s JOIN products p ON p.organization_id = s.organization_id AND p.id = s.product_id
		ORDER BY s.revenue DESC, s.quantity DESC, s.product_id`, org, from, to, limit)
	return rows, err
}

func split(keys []CustomerKey) (orgs, custs any) {
	return db.Pairs(keys, func(k CustomerKey) (uuid.UUID, uuid.UUID) { return k.Org, k.Customer })
}
