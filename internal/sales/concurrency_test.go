package sales_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/platform/db"
)

// These tests fire concurrent order mutations through the HTTP endpoint and
// check that money and stock hold whatever the interleaving. They do not call
// t.Parallel: they run alone, so the server's pool is theirs, the deadlock
// count of the database is theirs too, and a hang points at them.

// raceTimeout bounds one burst of concurrent requests; a healthy one takes well under a second.
const raceTimeout = 20 * time.Second

// burst runs fn(0..n-1) in n goroutines released at once and returns how long
// they took. Past raceTimeout it lists the database's sessions, cancels those
// waiting for a lock until the goroutines are done (their requests then fail),
// and fails the test.
func burst(t *testing.T, n int, fn func(i int)) time.Duration {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	began := time.Now()
	close(start)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return time.Since(began)
	case <-time.After(raceTimeout):
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := db.Open(ctx, srv.Config.DirectURL(), db.Options{})
	if err != nil {
		t.Fatalf("%d concurrent requests still running after %s (cannot inspect: %v)", n, raceTimeout, err)
	}
	defer admin.Close()
	var sessions []string
	admin.SelectContext(ctx, &sessions, `SELECT coalesce(state, '') || ' ' || coalesce(wait_event_type || ':' || wait_event, '') || ' ' ||
		left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY 1`) //nolint:errcheck
	for {
		admin.ExecContext(ctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`) //nolint:errcheck
		select {
		case <-done:
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	t.Fatalf("%d concurrent requests still running after %s (those cancelled to end the hang failed); the sessions were:\n%s",
		n, raceTimeout, strings.Join(sessions, "\n"))
	return 0
}

// outcome is a response's extensions.code ("" for success), with its field
// after a space when it has one. It reports (t.Errorf, so from any goroutine)
// an answer that is not HTTP 200, an error without a code or masked as
// internal, and an answer with neither data nor errors.
func outcome(t *testing.T, what string, r Response) string {
	for _, e := range r.Errors {
		switch c, _ := e.Extensions["code"].(string); c {
		case "", "INTERNAL_SERVER_ERROR":
			t.Errorf("%s: an error without a client code: %s", what, r.Raw)
		}
	}
	if len(r.Errors) == 0 && (len(r.Data) == 0 || string(r.Data) == "null") {
		t.Errorf("%s: neither data nor errors: %s", what, r.Raw)
	}
	if r.Status != http.StatusOK {
		t.Errorf("%s: HTTP %d: %s", what, r.Status, r.Raw)
	}
	if f := r.Field(); f != "" {
		return r.Code() + " " + f
	}
	return r.Code()
}

// tally counts outcomes, "OK" for success, as sorted "outcome=n" pairs.
func tally(outcomes []string) string {
	n := map[string]int{}
	for _, o := range outcomes {
		if o == "" {
			o = "OK"
		}
		n[o]++
	}
	parts := make([]string, 0, len(n))
	for o, k := range n {
		parts = append(parts, fmt.Sprintf("%s=%d", o, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// deadlocks returns pg_stat_database.deadlocks of the package's database,
// counting every deadlock its sessions found so far. A session reports its
// statistics to the shared counts when it goes idle, but at most once a
// second (otherwise up to ten seconds later), and always as it ends: so the
// server's pooled connections are closed first (the pool opens new ones when
// needed), and the count is read once their sessions are gone. Through
// PgBouncer (make test-pgbouncer), whose server connections outlive the
// pool's, the count cannot be made complete: ok is false.
func deadlocks(t *testing.T) (n int64, ok bool) {
	t.Helper()
	if srv.Config.DatabaseURL != srv.Config.DirectURL() {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := db.Open(ctx, srv.Config.DirectURL(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	conn, err := admin.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The sessions of the database but this one and the listeners (whose last
	// statement is their LISTEN, or the empty query of a ping).
	var pids []int64
	if err := conn.SelectContext(ctx, &pids, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
			AND query !~* '^\s*LISTEN\s' AND query <> ''`); err != nil {
		t.Fatal(err)
	}
	srv.DB.SetMaxIdleConns(0)
	// db.Open keeps as many idle connections as it opens.
	defer srv.DB.SetMaxIdleConns(srv.DB.Stats().MaxOpenConnections)
	for {
		var left int
		if err := conn.GetContext(ctx, &left, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY ($1::int[])`, pq.Array(pids)); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of the server's %d sessions still there 10 s after their connections were closed", left, len(pids))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := conn.GetContext(ctx, &n, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	return n, true
}

// TestConcurrentOrdersNeverOversell: 100 one-unit orders at once for a
// product with 10 in stock: exactly 10 are placed, the 90 others are
// CONFLICT on the line's quantity, and the stock is 0, as its ledger says.
func TestConcurrentOrdersNeverOversell(t *testing.T) {
	s := newShop(t, "race-oversell")
	hot := s.newProduct(t, "HOT", 500, 10)
	const n = 100
	outcomes := make([]string, n)
	elapsed := burst(t, n, func(i int) {
		outcomes[i] = outcome(t, "createOrder", s.order(t, s.member, nil, line(hot, 1)))
	})
	got := tally(outcomes)
	t.Logf("%d orders in %s: %s", n, elapsed.Round(time.Millisecond), got)
	if want := "CONFLICT input.lines[0].quantity=90 OK=10"; got != want {
		t.Errorf("outcomes %s, want %s", got, want)
	}
	wantStock(t, s.org, hot, 0)
	if k := count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, s.org); k != 10 {
		t.Errorf("%d orders in the table, want 10", k)
	}
	if k := count(t, `SELECT count(*) FROM inventory_movements WHERE organization_id = $1 AND product_id = $2 AND reason = 'ORDER' AND delta = -1`,
		s.org, hot); k != 10 {
		t.Errorf("%d ORDER movements of -1, want 10", k)
	}
	if k := count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'order.created'`, s.org); k != 10 {
		t.Errorf("%d order.created events, want 10", k)
	}
}

// TestConcurrentOrdersInOppositeLineOrders: 50 two-line orders at once, half
// listing A then B, half B then A: every one is placed (the products are
// locked in one order whatever the lines' order, so no deadlock happens, not
// even one the server would retry: the database's deadlock count does not
// move), and each stock, 70 before, is 20, as its ledger says.
func TestConcurrentOrdersInOppositeLineOrders(t *testing.T) {
	s := newShop(t, "race-opposite")
	a := s.newProduct(t, "A", 100, 70)
	b := s.newProduct(t, "B", 200, 70)
	const n = 50
	outcomes := make([]string, n)
	before, counted := deadlocks(t)
	elapsed := burst(t, n, func(i int) {
		lines := []map[string]any{line(a, 1), line(b, 1)}
		if i%2 == 1 {
			lines[0], lines[1] = lines[1], lines[0]
		}
		outcomes[i] = outcome(t, "createOrder", s.order(t, s.member, nil, lines...))
	})
	got := tally(outcomes)
	t.Logf("%d two-line orders in %s: %s", n, elapsed.Round(time.Millisecond), got)
	if want := fmt.Sprintf("OK=%d", n); got != want {
		t.Errorf("outcomes %s, want %s", got, want)
	}
	if !counted {
		t.Log("the pool goes through PgBouncer: the database's deadlock count is not checked")
	} else if after, _ := deadlocks(t); after != before {
		t.Errorf("the database found %d deadlocks during the orders (the server retried them)", after-before)
	}
	wantStock(t, s.org, a, 20)
	wantStock(t, s.org, b, 20)
	if k := count(t, `SELECT count(*) FROM orders WHERE organization_id = $1 AND line_count = 2 AND total = 300`, s.org); k != n {
		t.Errorf("%d orders of two lines totalling 300, want %d", k, n)
	}
}

// TestConcurrentOrdersWithOneIdempotencyKey: 20 identical createOrder at once
// with one idempotency key: one order is placed, its stock taken once, one
// event written, and all 20 get the same answer. The key with another order
// is then CONFLICT on idempotencyKey, and nothing changes.
func TestConcurrentOrdersWithOneIdempotencyKey(t *testing.T) {
	s := newShop(t, "race-idem")
	p := s.newProduct(t, "ONCE", 300, 5)
	key := "order-" + uuid.NewString()
	const n = 20
	answers := make([]Response, n)
	elapsed := burst(t, n, func(i int) {
		answers[i] = s.order(t, s.member, &key, line(p, 2))
		outcome(t, "createOrder", answers[i])
	})
	t.Logf("%d identical orders in %s", n, elapsed.Round(time.Millisecond))
	var first struct{ CreateOrder orderOut }
	MustOK(t, answers[0]).Decode(t, &first)
	for i, r := range answers {
		if string(r.Data) != string(answers[0].Data) || len(r.Errors) > 0 {
			t.Errorf("answer %d differs from the first:\n%s\nfirst:\n%s", i, r.Raw, answers[0].Raw)
		}
	}
	state := func() string {
		st, sum := stock(t, s.org, p)
		return fmt.Sprintf("orders %d, order.created events %d, stock %d, ledger %d",
			count(t, `SELECT count(*) FROM orders WHERE organization_id = $1`, s.org),
			count(t, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'order.created'`, s.org), st, sum)
	}
	if got, want := state(), "orders 1, order.created events 1, stock 3, ledger 3"; got != want {
		t.Errorf("after %d identical orders: %s; want %s", n, got, want)
	}
	var id uuid.UUID
	var number int
	if err := srv.DB.QueryRow(`SELECT id, number FROM orders WHERE organization_id = $1`, s.org).Scan(&id, &number); err != nil {
		t.Fatal(err)
	}
	if o := first.CreateOrder; o.ID != id || o.Number != number || o.Status != "PENDING" || len(o.Lines) != 1 || o.Lines[0].Quantity != 2 {
		t.Errorf("the answer is %+v, the order in the table %s number %d", o, id, number)
	}

	r := s.order(t, s.member, &key, line(p, 1))
	if got := outcome(t, "the key with another order", r); got != "CONFLICT idempotencyKey" {
		t.Errorf("the key with another order: %s, want CONFLICT on idempotencyKey", r.Raw)
	}
	if got, want := state(), "orders 1, order.created events 1, stock 3, ledger 3"; got != want {
		t.Errorf("after the key with another order: %s; want %s", got, want)
	}
}

// TestCancelRacingFulfil: cancelOrder and fulfillOrder of one PAID order at
// once, round after round: exactly one wins, the other is CONFLICT; a
// cancelled order gave its stock back, a fulfilled one did not, and the
// stock is always its ledger's sum. The day's sales count the fulfilled
// orders only.
func TestCancelRacingFulfil(t *testing.T) {
	s := newShop(t, "race-cancel")
	p := s.newProduct(t, "RACE", 100, 100)
	const rounds = 10
	want := 100
	wins := map[string]int{}
	var slowest time.Duration
	for k := range rounds {
		qty := k + 1
		o := s.mustOrder(t, s.member, line(p, qty))
		MustOK(t, s.transition(t, s.admin, "markOrderPaid", o.ID, ""))
		want -= qty
		// Left alone, one side tends to win every round: hold one or the other
		// back by 0 to 4 ms, so that both outcomes come up.
		delay := time.Duration(k/2%5) * time.Millisecond
		var cancelled, fulfilled Response
		elapsed := burst(t, 2, func(i int) {
			if i == k%2 {
				time.Sleep(delay)
			}
			if i == 0 {
				cancelled = s.transition(t, s.admin, "cancelOrder", o.ID, "")
			} else {
				fulfilled = s.transition(t, s.owner, "fulfillOrder", o.ID, "")
			}
		})
		slowest = max(slowest, elapsed)
		c, f := outcome(t, "cancel", cancelled), outcome(t, "fulfil", fulfilled)
		var status string
		if err := srv.DB.Get(&status, `SELECT status FROM orders WHERE organization_id = $1 AND id = $2`, s.org, o.ID); err != nil {
			t.Fatal(err)
		}
		var events []string
		if err := srv.DB.Select(&events, `SELECT action FROM audit_events WHERE organization_id = $1 AND target_id = $2 ORDER BY seq`,
			s.org, o.ID.String()); err != nil {
			t.Fatal(err)
		}
		var moves []string
		if err := srv.DB.Select(&moves, `SELECT reason || ':' || delta FROM inventory_movements
			WHERE organization_id = $1 AND order_id = $2 ORDER BY id`, s.org, o.ID); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("cancel %q, fulfil %q: order %s, events %v, movements %v", c, f, status, events, moves)
		var expect string
		switch {
		case c == "" && f == "CONFLICT":
			wins["cancel"]++
			want += qty
			expect = fmt.Sprintf(`cancel "", fulfil "CONFLICT": order CANCELLED, events [order.created order.paid order.cancelled], movements [ORDER:-%d CANCEL:%d]`, qty, qty)
		case f == "" && c == "CONFLICT":
			wins["fulfil"]++
			expect = fmt.Sprintf(`cancel "CONFLICT", fulfil "": order FULFILLED, events [order.created order.paid order.fulfilled], movements [ORDER:-%d]`, qty)
		default:
			expect = "one of them OK, the other CONFLICT"
		}
		if got != expect {
			t.Errorf("round %d: %s\nwant %s\ncancel: %s\nfulfil: %s", k, got, expect, cancelled.Raw, fulfilled.Raw)
		}
		wantStock(t, s.org, p, want)
	}
	t.Logf("%d rounds: cancel won %d, fulfil won %d; slowest race %s", rounds, wins["cancel"], wins["fulfil"], slowest.Round(time.Millisecond))
	var sales int
	if err := srv.DB.Get(&sales, `SELECT coalesce(sum(orders), 0) FROM sales_days WHERE organization_id = $1`, s.org); err != nil {
		t.Fatal(err)
	}
	if sales != wins["fulfil"] {
		t.Errorf("the daily sales count %d orders, want the %d fulfilled", sales, wins["fulfil"])
	}
}
