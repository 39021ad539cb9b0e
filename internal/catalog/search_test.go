package catalog_test

import (
	"testing"

	. "tenantgraph/internal/apitest"
)

// TestProductSearchCountIsCapped: a search's totalCount counts at most
// page.CountCap (10,000), like the customers' (one mechanism:
// page.Connection.Capped), and says whether it was capped; without a search it
// stays exact. One-letter searches list their first page by name.
func TestProductSearchCountIsCapped(t *testing.T) {
	t.Parallel()
	s := newShop(t, "search-cap")
	// 10,001 products "Widget 00001" … "Widget 10001" (SKU W-1 …) and one "Gadget" (G-1).
	_, err := srv.DB.Exec(`
		INSERT INTO products (organization_id, sku, name, price, track_inventory, created_by, created_at, updated_at)
		SELECT $1::uuid, 'W-' || i, 'Widget ' || lpad(i::text, 5, '0'), 100, false, $2::uuid, now(), now() FROM generate_series(1, 10001) AS i
		UNION ALL SELECT $1::uuid, 'G-1', 'Gadget', 100, false, $2::uuid, now(), now()`, s.org, s.owner.UserID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  string
		count int
		exact bool
		first []string
	}{
		{`, search: "w"`, 10_000, false, []string{"Widget 00001", "Widget 00002"}}, // 10,001 matches
		{`, search: "g"`, 10_000, false, []string{"Gadget", "Widget 00001"}},       // 10,002
		{`, search: "widget 0"`, 9_999, true, []string{"Widget 00001", "Widget 00002"}},
		{`, search: "gadget"`, 1, true, []string{"Gadget"}},
		{``, 10_002, true, []string{"Gadget", "Widget 00001"}},
	} {
		r, stmts := srv.PostCounted(t, s.member.AccessToken, `query($o: ID!) { products(orgId: $o, first: 2`+c.args+`) {
			totalCount totalCountIsExact edges { node { name } } } }`, map[string]any{"o": s.org})
		MustOK(t, r)
		var out struct {
			Products struct {
				TotalCount        int
				TotalCountIsExact bool
				Edges             []struct{ Node struct{ Name string } }
			}
		}
		r.Decode(t, &out)
		var names []string
		for _, e := range out.Products.Edges {
			names = append(names, e.Node.Name)
		}
		p := out.Products
		if p.TotalCount != c.count || p.TotalCountIsExact != c.exact || len(names) != len(c.first) || stmts != 3 {
			t.Errorf("products(%s): totalCount %d, exact %v, %v, %d statements; want %d, %v, %v, 3",
				c.args, p.TotalCount, p.TotalCountIsExact, names, stmts, c.count, c.exact, c.first)
			continue
		}
		for i := range names {
			if names[i] != c.first[i] {
				t.Errorf("products(%s): %v, want %v", c.args, names, c.first)
			}
		}
	}
}
