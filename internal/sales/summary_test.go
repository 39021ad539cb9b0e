package sales_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const summaryQuery = `query($o: ID!, $from: Time!, $to: Time!) { organization(orgId: $o) { salesSummary(from: $from, to: $to) {
	from to timeZone orders revenue { amount formatted } averageOrderValue { amount }
	days { day orders revenue { amount } } topProducts { sku name quantity revenue { amount } product { id } } } } }`

type summaryOut struct {
	From, To, TimeZone string
	Orders             int
	Revenue            struct{ Amount, Formatted string }
	AverageOrderValue  struct{ Amount string }
	Days               []struct {
		Day     string
		Orders  int
		Revenue struct{ Amount string }
	}
	TopProducts []struct {
		Sku, Name string
		Quantity  int
		Revenue   struct{ Amount string }
		Product   struct{ ID uuid.UUID }
	}
}

// placedAt inserts a PENDING order of one line placed at when (a fixture:
// createOrder places orders now).
func (s *shop) placedAt(t *testing.T, when time.Time, product uuid.UUID, sku string, qty int, price int64) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := srv.DB.Exec(`
		WITH n AS (
			INSERT INTO order_numbers AS c (organization_id, last) VALUES ($1, 1)
			ON CONFLICT (organization_id) DO UPDATE SET last = c.last + 1 RETURNING last),
		o AS (
			INSERT INTO orders (organization_id, id, number, customer_id, status, currency, subtotal, total, line_count, created_at)
			SELECT $1, $2, n.last, $3, 'PENDING', 'USD', $4::int * $5::bigint, $4::int * $5::bigint, 1, $6 FROM n RETURNING id)
		INSERT INTO order_lines (organization_id, order_id, line_no, product_id, sku, name, unit_price, quantity, line_total, track_inventory)
		SELECT $1, o.id, 1, $7, $8, 'P', $5, $4, $4::int * $5::bigint, false FROM o`,
		s.org, id, s.customer, qty, price, when, product, sku); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *shop) summary(t *testing.T, from, to string) summaryOut {
	t.Helper()
	r := MustOK(t, srv.Post(t, s.member.AccessToken, summaryQuery, map[string]any{"o": s.org, "from": from, "to": to}))
	var out struct {
		Organization struct{ SalesSummary summaryOut }
	}
	r.Decode(t, &out)
	return out.Organization.SalesSummary
}

// TestSalesSummary: the summary counts the PAID and FULFILLED orders by the
// local day they were placed on, in the organization's time zone, over every
// day from from's through to's; a cancelled or refunded order counts nothing;
// a time zone change moves the days (the roll-up is rebuilt); the summary
// costs two statements.
func TestSalesSummary(t *testing.T) {
	t.Parallel()
	s := newShop(t, "ord-sum")
	a, b := s.newProduct(t, "A", 1000, -1), s.newProduct(t, "B", 250, -1)
	MustOK(t, srv.Post(t, s.admin.AccessToken, `mutation($o: ID!) { setOrganizationTimeZone(orgId: $o, timeZone: "America/New_York") { timeZone } }`,
		map[string]any{"o": s.org}))

	at := func(v string) time.Time {
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// New York is UTC-5 in March before the 8th.
	late := s.placedAt(t, at("2026-03-01T03:00:00Z"), a, "A", 2, 1000)  // Feb 28, 22:00 local: 2,000
	day1 := s.placedAt(t, at("2026-03-01T15:00:00Z"), b, "B", 4, 250)   // Mar 1: 1,000
	day2 := s.placedAt(t, at("2026-03-02T12:00:00Z"), a, "A", 1, 1000)  // Mar 2: 1,000
	cancel := s.placedAt(t, at("2026-03-02T13:00:00Z"), b, "B", 9, 250) // paid, then cancelled
	refund := s.placedAt(t, at("2026-03-02T14:00:00Z"), a, "A", 5, 1000)
	pending := s.placedAt(t, at("2026-03-02T15:00:00Z"), a, "A", 7, 1000)
	_ = pending
	for _, id := range []uuid.UUID{late, day1, day2, cancel, refund} {
		MustOK(t, s.transition(t, s.admin, "markOrderPaid", id, ""))
	}
	MustOK(t, s.transition(t, s.admin, "fulfillOrder", day2, ""))
	MustOK(t, s.transition(t, s.admin, "cancelOrder", cancel, ""))
	MustOK(t, s.transition(t, s.admin, "refundOrder", refund, ""))

	got := s.summary(t, "2026-02-28T12:00:00-05:00", "2026-03-02T23:59:00-05:00")
	if got.From != "2026-02-28" || got.To != "2026-03-02" || got.TimeZone != "America/New_York" || got.Orders != 3 ||
		got.Revenue.Amount != "4000" || got.Revenue.Formatted != "USD 40.00" || got.AverageOrderValue.Amount != "1333" {
		t.Fatalf("summary = %+v", got)
	}
	days := ""
	for _, d := range got.Days {
		days += d.Day + ":" + strconv.Itoa(d.Orders) + ":" + d.Revenue.Amount + " "
	}
	if days != "2026-02-28:1:2000 2026-03-01:1:1000 2026-03-02:1:1000 " {
		t.Errorf("days = %s", days)
	}
	if len(got.TopProducts) != 2 || got.TopProducts[0].Sku != "A" || got.TopProducts[0].Quantity != 3 ||
		got.TopProducts[0].Revenue.Amount != "3000" || got.TopProducts[0].Product.ID != a ||
		got.TopProducts[1].Sku != "B" || got.TopProducts[1].Revenue.Amount != "1000" {
		t.Errorf("top products = %+v", got.TopProducts)
	}

	// In UTC the late order falls on March 1.
	MustOK(t, srv.Post(t, s.admin.AccessToken, `mutation($o: ID!) { setOrganizationTimeZone(orgId: $o, timeZone: "UTC") { timeZone } }`,
		map[string]any{"o": s.org}))
	got = s.summary(t, "2026-02-28T00:00:00Z", "2026-03-02T00:00:00Z")
	days = ""
	for _, d := range got.Days {
		days += d.Day + ":" + strconv.Itoa(d.Orders) + ":" + d.Revenue.Amount + " "
	}
	if days != "2026-02-28:0:0 2026-03-01:2:3000 2026-03-02:1:1000 " || got.Orders != 3 {
		t.Errorf("days in UTC = %s (orders %d)", days, got.Orders)
	}

	// Two statements for the summary, over what its organization costs alone.
	_, base := srv.PostCounted(t, s.member.AccessToken, `query($o: ID!) { organization(orgId: $o) { id } }`, map[string]any{"o": s.org})
	_, with := srv.PostCounted(t, s.member.AccessToken, `query($o: ID!, $from: Time!, $to: Time!) { organization(orgId: $o) { id
		salesSummary(from: $from, to: $to) { orders days { day } topProducts { sku } } } }`,
		map[string]any{"o": s.org, "from": "2026-01-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"})
	if with-base != 2 {
		t.Errorf("the summary cost %d statements, want 2", with-base)
	}

	// A range beyond 366 days, or backwards, is refused.
	// (366 x 24 hours that touch 367 local days, too.)
	for _, rng := range [][2]string{{"2025-01-01T00:00:00Z", "2026-03-01T00:00:00Z"}, {"2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"},
		{"2025-01-01T23:59:00Z", "2026-01-02T00:01:00Z"}} {
		r := srv.Post(t, s.member.AccessToken, summaryQuery, map[string]any{"o": s.org, "from": rng[0], "to": rng[1]})
		WantCode(t, r, "BAD_USER_INPUT")
	}
}
