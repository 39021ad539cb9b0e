package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lib/pq"
)

// The write scenarios: createOrder (one line, quantity 1) from o.Dataset.OrderClients
// clients at once, each a member of its own organization with its own token.
//
//	orders      client k orders in organization k, from its products in turn
//	            (o.Dataset.OrderProducts of them, ample stock): the
//	            organizations' writes never wait for each other
//	orders-hot  every client orders the one product of one organization: each
//	            order locks the same product row (FOR UPDATE, then the stock's
//	            UPDATE) until it commits
//
// Their data set is seeded straight into the cluster too (seedOrdersSQL),
// beside the read scenarios' (whose viewer's password hash every clerk shares).
// Each run also reads pg_stat_database.deadlocks of the server's database
// before its warm-up and after its clients stopped (the server retries a
// deadlocked transaction, so none shows as an error). There is no ceiling:
// pgbench would replay one client's order on one product, which is the hot
// scenario whatever the scenario.

// writeNames are the write scenarios, in the order "all" runs them.
var writeNames = []string{"orders", "orders-hot"}

func isWrite(name string) bool { return name == "orders" || name == "orders-hot" }

const createOrderQuery = `mutation($o: ID!, $in: CreateOrderInput!) { createOrder(orgId: $o, input: $in) {
	id number status total { amount currency } lines { sku quantity } } }`

const (
	orderClerkPrefix = "order-" // clerk k is order-k@load.test
	orderOwnerEmail  = "orders-owner@load.test"
	orderSlugPrefix  = "load-orders-" // organization k (0: the hot one) is load-orders-000k
	// orderStock is every seeded product's stock: one ledger movement, the
	// most one may move (inventory_movements_delta_check).
	orderStock = 1_000_000
)

// orderSession is the write scenarios' data set, as the clients need it:
// index k-1 is clerk k's token, organization, customer and products.
type orderSession struct {
	Tokens    []string
	Orgs      []string
	Customers []string
	Products  [][]string
	// The hot organization (every clerk is a member), its customer and its product.
	HotOrg, HotCustomer, HotProduct string
	Seeded                          bool // false: the data was there already
}

// seedOrders seeds the write scenarios' data set into t's database unless it
// is there (the read scenarios' seed, which registers the viewer, must have
// run), reads it back and logs each clerk in through the API, each from an
// X-Forwarded-For address of its own (the per-address login limit is 30 a
// minute).
func seedOrders(ctx context.Context, o options, t target) (orderSession, error) {
	var s orderSession
	db, err := sql.Open("postgres", t.DatabaseURL)
	if err != nil {
		return s, err
	}
	defer db.Close()
	var hasOrders, seeded bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('orders') IS NOT NULL,
		EXISTS (SELECT 1 FROM organizations WHERE slug = $1)`, orderSlugPrefix+"0000").Scan(&hasOrders, &seeded); err != nil {
		return s, err
	}
	if !hasOrders {
		return s, errNoOrders
	}
	if !seeded {
		if err := seedOrdersSQL(ctx, db, o.Dataset); err != nil {
			return s, err
		}
		s.Seeded = true
	}
	n := o.Dataset.OrderClients
	var orgs []string
	if err := selectStrings(ctx, db, &orgs, `SELECT id FROM organizations WHERE slug LIKE $1 || '%' ORDER BY slug`, orderSlugPrefix); err != nil {
		return s, err
	}
	if len(orgs) < n+1 {
		return s, fmt.Errorf("the database has %d orders organizations, want %d (the hot one and -order-clients): seeded with a smaller size?", len(orgs), n+1)
	}
	s.HotOrg, s.Orgs = orgs[0], orgs[1:n+1]
	customers := map[string]string{}
	products := map[string][]string{}
	rows, err := db.QueryContext(ctx, `SELECT c.organization_id, c.id, coalesce(array_agg(p.id ORDER BY p.sku) FILTER (WHERE p.id IS NOT NULL), '{}')
		FROM customers c LEFT JOIN products p ON p.organization_id = c.organization_id
		WHERE c.organization_id = ANY ($1::uuid[]) GROUP BY c.organization_id, c.id`, pq.Array(orgs))
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var org, cust string
		var ids []string
		if err := rows.Scan(&org, &cust, pq.Array(&ids)); err != nil {
			return s, err
		}
		customers[org], products[org] = cust, ids
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	if len(products[s.HotOrg]) != 1 {
		return s, fmt.Errorf("the hot organization has %d products, want 1", len(products[s.HotOrg]))
	}
	s.HotCustomer, s.HotProduct = customers[s.HotOrg], products[s.HotOrg][0]
	for _, org := range s.Orgs {
		if customers[org] == "" || len(products[org]) == 0 {
			return s, fmt.Errorf("orders organization %s has no customer or no products", org)
		}
		s.Customers = append(s.Customers, customers[org])
		s.Products = append(s.Products, products[org])
	}
	c := &http.Client{Timeout: requestLimit}
	defer c.CloseIdleConnections()
	for k := 1; k <= n; k++ {
		tok, err := loginFrom(ctx, c, t.URL, fmt.Sprintf("%s%d@load.test", orderClerkPrefix, k), seedPassword, fmt.Sprintf("198.51.100.%d", k))
		if err != nil {
			return s, fmt.Errorf("logging clerk %d in: %w", k, err)
		}
		s.Tokens = append(s.Tokens, tok)
	}
	return s, nil
}

var errNoOrders = fmt.Errorf("the server's database has no orders (a binary older than the orders area?)")

func selectStrings(ctx context.Context, db *sql.DB, out *[]string, query string, args ...any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return rows.Err()
}

// seedOrdersSQL inserts the write scenarios' data set, in one transaction:
// organizations "Orders Org k" (k = 1 ... OrderClients, slug load-orders-000k)
// and "Orders Hot Org" (k = 0), all owned by orders-owner@load.test; clerk k
// (order-k@load.test, the viewer's password hash) a MEMBER of organization k
// and of the hot one; one customer in each; OrderProducts products in each
// numbered one (SKU-001 ...) and one (HOT-1) in the hot one, each with a stock
// of orderStock (one ADJUSTMENT movement of the ledger).
func seedOrdersSQL(ctx context.Context, db *sql.DB, d dataset) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	p := seedOrgPrefix + "ord-"
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"the clerks' and the owner's accounts", `INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at, updated_at)
			SELECT md5($1 || 'u-' || k)::uuid, CASE k WHEN 0 THEN $5 ELSE $6 || k || '@load.test' END,
			       CASE k WHEN 0 THEN 'Orders Owner' ELSE 'Order Clerk ' || k END, v.password_hash, $2::timestamptz, $2::timestamptz, $2::timestamptz
			FROM generate_series(0, $3::int) k, users v WHERE v.email = $4`, []any{p, seedBase, d.OrderClients, viewerEmail, orderOwnerEmail, orderClerkPrefix}},
		{"the orders organizations", `INSERT INTO organizations (id, name, slug, created_at, updated_at)
			SELECT md5($1 || 'o-' || k)::uuid, CASE k WHEN 0 THEN 'Orders Hot Org' ELSE 'Orders Org ' || k END,
			       $4 || lpad(k::text, 4, '0'), $2::timestamptz, $2::timestamptz
			FROM generate_series(0, $3::int) k`, []any{p, seedBase, d.OrderClients, orderSlugPrefix}},
		{"their limits (a long run can place more orders in one organization than a day's default quota)", `UPDATE organization_limits l SET orders_per_day = 100000000
			FROM organizations o WHERE o.id = l.organization_id AND o.slug LIKE $1 || '%'`, []any{orderSlugPrefix}},
		{"their owner and clerks", `INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at)
			SELECT md5($1 || 'o-' || org)::uuid, md5($1 || 'u-' || k)::uuid, CASE k WHEN 0 THEN 'OWNER' ELSE 'MEMBER' END,
			       $2::timestamptz, $2::timestamptz
			FROM generate_series(0, $3::int) org, generate_series(0, $3::int) k
			WHERE k = 0 OR org = 0 OR org = k`, []any{p, seedBase, d.OrderClients}},
		{"their customers", `INSERT INTO customers (organization_id, id, name, status, created_by, created_at, updated_at)
			SELECT md5($1 || 'o-' || k)::uuid, md5($1 || 'c-' || k)::uuid, 'Order Customer ' || k, 'ACTIVE',
			       md5($1 || 'u-0')::uuid, $2::timestamptz, $2::timestamptz
			FROM generate_series(0, $3::int) k`, []any{p, seedBase, d.OrderClients}},
		{"their products", `INSERT INTO products (organization_id, id, sku, name, price, track_inventory, created_by, created_at, updated_at)
			SELECT md5($1 || 'o-' || k)::uuid, md5($1 || 'p-' || k || '-' || j)::uuid,
			       CASE k WHEN 0 THEN 'HOT-1' ELSE 'SKU-' || lpad(j::text, 3, '0') END,
			       CASE k WHEN 0 THEN 'Hot Product' ELSE 'Product ' || j END, 1000 + 10 * j, true,
			       md5($1 || 'u-0')::uuid, $2::timestamptz, $2::timestamptz
			FROM generate_series(0, $3::int) k, generate_series(1, $4::int) j
			WHERE k > 0 OR j = 1`, []any{p, seedBase, d.OrderClients, d.OrderProducts}},
		{"their stock", `INSERT INTO inventory_movements (organization_id, product_id, delta, reason, note, actor_id, created_at)
			SELECT p.organization_id, p.id, $3::int, 'ADJUSTMENT', 'load test stock', md5($1 || 'u-0')::uuid, $2::timestamptz
			FROM products p JOIN organizations o ON o.id = p.organization_id WHERE o.slug LIKE $4 || '%'
			ORDER BY p.organization_id, p.id`, []any{p, seedBase, orderStock, orderSlugPrefix}},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seeding %s: %w", st.what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seeding the orders data set: %w", err)
	}
	_, err = db.ExecContext(ctx, `ANALYZE users, organizations, organization_members, customers, products, inventory_movements`)
	return err
}

// loginFrom logs email in through the API as seen from address (X-Forwarded-For)
// and returns its access token.
func loginFrom(ctx context.Context, c *http.Client, base, email, password, address string) (string, error) {
	const login = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`
	body, _ := json.Marshal(map[string]any{"query": login, "variables": map[string]any{"e": email, "p": password}})
	b, status, err := post(ctx, c, base+"/query", body, address)
	if err != nil {
		return "", err
	}
	var out struct {
		Data struct {
			Login struct {
				AccessToken string `json:"accessToken"`
			} `json:"login"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &out) != nil || status != http.StatusOK || out.Data.Login.AccessToken == "" {
		return "", fmt.Errorf("HTTP %d: %.300s", status, b)
	}
	return out.Data.Login.AccessToken, nil
}

// orderBody is createOrder's request: one line of product, quantity 1.
func orderBody(org, customer, product string) []byte {
	b, _ := json.Marshal(map[string]any{"query": createOrderQuery, "variables": map[string]any{"o": org,
		"in": map[string]any{"customerId": customer, "lines": []any{map[string]any{"productId": product, "quantity": 1}}}}})
	return b
}

// statsFlush is how long after its last transaction an idle backend has
// surely published its counters (pg_stat_database): PostgreSQL 15 flushes a
// busy backend's at most once a second and an idle one's within 10 s
// (PGSTAT_IDLE_INTERVAL).
const statsFlush = 11 * time.Second

// runWrite checks one order of each client, then runs the scenario's clients
// (runLoad), reading the deadlocks of the server's database before the
// warm-up and statsFlush after the clients stopped.
func runWrite(ctx context.Context, o options, t target, s orderSession, name string) (throughputRun, error) {
	run := throughputRun{Scenario: name, Connections: len(s.Tokens)}
	clients := make([]loadClient, len(s.Tokens))
	for k, tok := range s.Tokens {
		cl := loadClient{token: tok}
		if name == "orders-hot" {
			cl.bodies = [][]byte{orderBody(s.HotOrg, s.HotCustomer, s.HotProduct)}
		} else {
			for _, p := range s.Products[k] {
				cl.bodies = append(cl.bodies, orderBody(s.Orgs[k], s.Customers[k], p))
			}
		}
		clients[k] = cl
	}
	c := &http.Client{Timeout: requestLimit}
	defer c.CloseIdleConnections()
	for k, cl := range clients {
		b, status, err := send(ctx, c, t.URL+"/query", cl.token, cl.bodies[0])
		var out struct {
			Data struct {
				CreateOrder struct {
					Number int    `json:"number"`
					Status string `json:"status"`
					Lines  []struct {
						Quantity int `json:"quantity"`
					} `json:"lines"`
				} `json:"createOrder"`
			} `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Errors) > 0 ||
			out.Data.CreateOrder.Number < 1 || out.Data.CreateOrder.Status != "PENDING" || len(out.Data.CreateOrder.Lines) != 1 {
			return run, fmt.Errorf("%s: client %d's first order: HTTP %d %v %.300s", name, k+1, status, err, b)
		}
	}
	db, err := sql.Open("postgres", t.DatabaseURL)
	if err != nil {
		return run, err
	}
	defer db.Close()
	deadlocks := func() (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
		return n, err
	}
	var before int64
	err = runLoad(ctx, o, t, &run, clients, func(after bool) error {
		if !after {
			before, err = deadlocks()
			return err
		}
		if !sleepCtx(ctx, statsFlush) {
			return errStopped
		}
		n, err := deadlocks()
		n -= before
		run.Deadlocks = &n
		return err
	})
	return run, err
}

// ordersLine describes the write scenarios' data set, for the reports.
func (d dataset) ordersLine() string {
	return fmt.Sprintf("orders: %d clients, each a member of its own organization (%d products each) and of the hot one (orders-hot: one product); createOrder of one line, quantity 1",
		d.OrderClients, d.OrderProducts)
}

// writeRuns seeds the write data set on first use and runs one write
// scenario on t; the session is kept for the next.
type writeRuns struct {
	s *orderSession
}

func (w *writeRuns) run(ctx context.Context, o options, t target, name string) (throughputRun, error) {
	if w.s == nil {
		t0 := time.Now()
		s, err := seedOrders(ctx, o, t)
		if err != nil {
			return throughputRun{}, err
		}
		w.s = &s
		fmt.Fprintf(os.Stderr, "loadtest: orders data set %s in %.1fs; %d clerks logged in\n",
			map[bool]string{true: "seeded", false: "found"}[s.Seeded], time.Since(t0).Seconds(), len(s.Tokens))
	}
	return runWrite(ctx, o, t, *w.s, name)
}
