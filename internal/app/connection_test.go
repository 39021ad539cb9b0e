package app_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	. "tenantgraph/internal/apitest"
)

// connections are every list of the API, as a query taking $first and $after
// whose nodes have an identifying field, and the path to the connection.
var connections = []struct {
	name, query, node string
	path              []string
}{
	{"organizations", `query($f: Int, $a: String) { organizations(first: $f, after: $a) { %s } }`, "id", []string{"organizations"}},
	{"members", `query($o: ID!, $f: Int, $a: String) { organization(orgId: $o) { members(first: $f, after: $a) { %s } } }`, "user { id }", []string{"organization", "members"}},
	{"invitations", `query($o: ID!, $f: Int, $a: String) { organization(orgId: $o) { invitations(first: $f, after: $a) { %s } } }`, "id", []string{"organization", "invitations"}},
	{"audit log", `query($o: ID!, $f: Int, $a: String) { organization(orgId: $o) { auditLog(first: $f, after: $a) { %s } } }`, "id", []string{"organization", "auditLog"}},
	{"myInvitations", `query($f: Int, $a: String) { myInvitations(first: $f, after: $a) { %s } }`, "id", []string{"myInvitations"}},
}

// connectionVars are the variables of a connections query.
func connectionVars(query string, f *listFixture, first, after any) map[string]any {
	v := map[string]any{"f": first, "a": after}
	if strings.Contains(query, "$o") {
		v["o"] = f.org
	}
	return v
}

type connectionResult struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage bool
		EndCursor   *string
	}
	Edges []struct {
		Cursor string
		Node   map[string]any
	}
}

func (c connectionResult) ids() []string {
	var out []string
	for _, e := range c.Edges {
		out = append(out, fmt.Sprint(e.Node))
	}
	return out
}

// TestConnectionsPageThroughEveryList: walking any list in pages of 2 returns
// exactly the items of one big page, in order, each page with the right
// hasNextPage, endCursor and totalCount.
func TestConnectionsPageThroughEveryList(t *testing.T) {
	t.Parallel()
	f := seedLists(t, 5)
	for _, c := range connections {
		t.Run(c.name, func(t *testing.T) {
			get := func(first int, after *string) connectionResult {
				t.Helper()
				page := `totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ` + c.node + ` } }`
				r := MustOK(t, srv.Post(t, f.viewer.AccessToken, fmt.Sprintf(c.query, page), connectionVars(c.query, f, first, after)))
				var data map[string]any
				r.Decode(t, &data)
				node := any(data)
				for _, p := range c.path {
					node = node.(map[string]any)[p]
				}
				var out connectionResult
				b, err := json.Marshal(node)
				if err == nil {
					err = json.Unmarshal(b, &out)
				}
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			all := get(100, nil)
			if len(all.Edges) < 4 || all.TotalCount != len(all.Edges) || all.PageInfo.HasNextPage {
				t.Fatalf("one page of 100: %d edges, totalCount %d, hasNextPage %v", len(all.Edges), all.TotalCount, all.PageInfo.HasNextPage)
			}
			var walked []string
			var after *string
			for range len(all.Edges) {
				p := get(2, after)
				walked = append(walked, p.ids()...)
				if p.TotalCount != all.TotalCount {
					t.Fatalf("totalCount %d on a page, %d on the whole list", p.TotalCount, all.TotalCount)
				}
				if len(p.Edges) == 0 || *p.PageInfo.EndCursor != p.Edges[len(p.Edges)-1].Cursor {
					t.Fatalf("page %+v: endCursor is not the last edge's cursor", p)
				}
				if !p.PageInfo.HasNextPage {
					break
				}
				after = p.PageInfo.EndCursor
			}
			if !slices.Equal(walked, all.ids()) {
				t.Fatalf("pages of 2 = %v, one page = %v", walked, all.ids())
			}
			if empty := get(0, nil); len(empty.Edges) != 0 || empty.PageInfo.EndCursor != nil || !empty.PageInfo.HasNextPage {
				t.Fatalf("first: 0 = %+v, want no edges, no endCursor, hasNextPage", empty)
			}
		})
	}
}

// TestConnectionsRefuseBadPagingArguments: a cursor the server did not make, or
// a page size out of range, is BAD_USER_INPUT on its argument, on every list.
func TestConnectionsRefuseBadPagingArguments(t *testing.T) {
	t.Parallel()
	f := seedLists(t, 1)
	cursor := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	bad := []struct {
		name  string
		first any
		after any
		field string
	}{
		{"first over 100", 101, nil, "first"},
		{"negative first", -1, nil, "first"},
		{"not base64", nil, "!!!", "after"},
		{"not JSON", nil, cursor("nope"), "after"},
		{"a NUL character", nil, cursor(`{"n":"a\u0000b","i":"00000000-0000-0000-0000-000000000000","t":"2026-01-01T00:00:00Z","u":"00000000-0000-0000-0000-000000000000"}`), "after"},
		{"too long", nil, strings.Repeat("A", 600), "after"},
	}
	for _, c := range connections {
		for _, b := range bad {
			r := srv.Post(t, f.viewer.AccessToken, fmt.Sprintf(c.query, "totalCount"), connectionVars(c.query, f, b.first, b.after))
			if r.Code() != "BAD_USER_INPUT" || r.Field() != b.field {
				t.Errorf("%s, %s: code %q field %q, want BAD_USER_INPUT on %s: %s", c.name, b.name, r.Code(), r.Field(), b.field, r.Raw)
			}
		}
	}
	r := srv.Post(t, f.viewer.AccessToken, `query($o: ID!) { organization(orgId: $o) { auditLog(action: "member.\u0000left") { totalCount } } }`, map[string]any{"o": f.org})
	if r.Code() != "BAD_USER_INPUT" || r.Field() != "action" {
		t.Errorf("auditLog with a NUL in action: %s", r.Raw)
	}
}
