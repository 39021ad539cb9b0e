package customer_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	. "tenantgraph/internal/apitest"
)

// typeaheadNames is the test's data set, built alike in SQL and here: customer
// i (1 to n) is named prefix[i % 4] + " " + i (5 digits), has the company
// "Cube Co" when i % 8 == 3, and the email u<i>@ten.test for i <= 10,000,
// u10001@ten.org for 10,001, none after.
var typeaheadPrefixes = []string{"Customer", "cuckoo", "Acme", "Zed"}

func typeaheadRow(i int) (name, search string) {
	name = fmt.Sprintf("%s %05d", typeaheadPrefixes[i%4], i)
	search = name
	if i%8 == 3 {
		search += " Cube Co"
	}
	switch {
	case i <= 10_000:
		search += fmt.Sprintf(" u%d@ten.test", i)
	case i == 10_001:
		search += " u10001@ten.org"
	}
	return name, search
}

// TestTypeaheadSearch: one- and two-letter searches (no trigram: they walk the
// name index) list exactly the matching customers, in the list's order, page
// after page without duplicates or gaps; a search's totalCount is exact up to
// page.CountCap (10,000) and capped past it, and says which; the statements
// stay 2 for a page, 3 with the count.
func TestTypeaheadSearch(t *testing.T) {
	t.Parallel()
	o := newCRMOrg(t, "typeahead")
	const n = 12_000
	_, err := srv.DB.Exec(`
		INSERT INTO customers (organization_id, name, email, company, created_by, created_at, updated_at)
		SELECT $1, (ARRAY['Customer', 'cuckoo', 'Acme', 'Zed'])[1 + i % 4] || ' ' || lpad(i::text, 5, '0'),
			CASE WHEN i <= 10000 THEN 'u' || i || '@ten.test' WHEN i = 10001 THEN 'u10001@ten.org' END,
			CASE WHEN i % 8 = 3 THEN 'Cube Co' END, $2, now() + i * interval '1 ms', now()
		FROM generate_series(1, $3::int) AS i`, o.org, o.owner.UserID, n)
	if err != nil {
		t.Fatal(err)
	}
	matching := func(term string) []string {
		var out []string
		for i := 1; i <= n; i++ {
			if name, s := typeaheadRow(i); strings.Contains(strings.ToLower(s), strings.ToLower(term)) {
				out = append(out, name)
			}
		}
		return out
	}
	byName := func(names []string) []string {
		out := slices.Clone(names)
		slices.SortFunc(out, func(a, b string) int {
			if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		return out
	}

	// Every page of "cu" (7,500 matches), 100 at a time, by name and by creation.
	cu := matching("cu")
	if len(cu) != 7_500 {
		t.Fatalf("the data set has %d customers matching cu, want 7,500", len(cu))
	}
	for _, c := range []struct {
		order string
		want  []string
	}{
		{`, orderBy: {field: NAME, direction: ASC}`, byName(cu)},
		{`, orderBy: {field: CREATED_AT, direction: DESC}`, func() []string { r := slices.Clone(cu); slices.Reverse(r); return r }()},
	} {
		var got []string
		vars := map[string]any{}
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("%s: over 100 pages", c.order)
			}
			p := listCustomers(t, o.m1, o.org, `, search: "cu", first: 100`+c.order, vars)
			got = append(got, p.Names...)
			if !p.HasNext {
				break
			}
			vars = map[string]any{"after": *p.EndCursor}
		}
		if !slices.Equal(got, c.want) {
			i := 0
			for i < len(got) && i < len(c.want) && got[i] == c.want[i] {
				i++
			}
			t.Errorf("search cu%s: %d listed, want %d; first difference at %d", c.order, len(got), len(c.want), i)
		}
	}

	// First pages of one letter, in both name directions.
	for _, c := range []struct{ term, dir string }{{"C", "ASC"}, {"c", "DESC"}, {"z", "ASC"}, {"e", "DESC"}} {
		want := byName(matching(c.term))
		if c.dir == "DESC" {
			slices.Reverse(want)
		}
		p := listCustomers(t, o.m1, o.org, fmt.Sprintf(`, search: %q, first: 20, orderBy: {field: NAME, direction: %s}`, c.term, c.dir), nil)
		if !slices.Equal(p.Names, want[:20]) || !p.HasNext {
			t.Errorf("search %q %s: %v, want %v", c.term, c.dir, p.Names, want[:20])
		}
	}

	// totalCount: exact up to 10,000, capped past it.
	for _, c := range []struct {
		term  string
		count int
		exact bool
	}{
		{"ten.test", 10_000, true},   // exactly the cap
		{"@ten.", 10_000, false},     // 10,001
		{"c", 10_000, false},         // 10,500
		{"cu", 7_500, true},          //
		{"Cube", 1_500, true},        // trigram index
		{"Zed 00003", 1, true},       //
		{"nothing like it", 0, true}, //
	} {
		if !c.exact && len(matching(c.term)) <= 10_000 || c.exact && len(matching(c.term)) != c.count {
			t.Fatalf("the data set has %d customers matching %q", len(matching(c.term)), c.term)
		}
		r, stmts := srv.PostCounted(t, o.m1.AccessToken, `query($o: ID!, $s: String) { customers(orgId: $o, search: $s, first: 5) {
			totalCount totalCountIsExact edges { node { name } } } }`, map[string]any{"o": o.org, "s": c.term})
		MustOK(t, r)
		var out struct {
			Customers struct {
				TotalCount        int
				TotalCountIsExact bool
			}
		}
		r.Decode(t, &out)
		if out.Customers.TotalCount != c.count || out.Customers.TotalCountIsExact != c.exact || stmts != 3 {
			t.Errorf("search %q: totalCount %d, exact %v, %d statements; want %d, %v, 3",
				c.term, out.Customers.TotalCount, out.Customers.TotalCountIsExact, stmts, c.count, c.exact)
		}
	}
	// Without a search the count stays exact, past the cap too; a page alone is 2 statements.
	r, stmts := srv.PostCounted(t, o.m1.AccessToken, `query($o: ID!) { customers(orgId: $o, first: 5) { totalCount totalCountIsExact } }`,
		map[string]any{"o": o.org})
	MustOK(t, r)
	var all struct {
		Customers struct {
			TotalCount        int
			TotalCountIsExact bool
		}
	}
	r.Decode(t, &all)
	if all.Customers.TotalCount != n || !all.Customers.TotalCountIsExact || stmts != 3 {
		t.Errorf("no search: totalCount %d, exact %v, %d statements; want %d, true, 3", all.Customers.TotalCount, all.Customers.TotalCountIsExact, stmts, n)
	}
	r, stmts = srv.PostCounted(t, o.m1.AccessToken, `query($o: ID!) { customers(orgId: $o, search: "C", first: 20) { edges { node { name } } } }`,
		map[string]any{"o": o.org})
	MustOK(t, r)
	if stmts != 2 {
		t.Errorf("a search's page: %d statements, want 2 (the membership, the page)", stmts)
	}
}
