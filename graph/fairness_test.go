package graph

import (
	"slices"
	"testing"

	"github.com/google/uuid"
)

// TestOrgIDsOfRootFields: the organizations an operation counts against are
// its root fields' orgId arguments, literal or variable, through aliases and
// fragments, each once; nested fields and values that are not UUIDs are not.
func TestOrgIDsOfRootFields(t *testing.T) {
	schema := NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	for _, tc := range []struct {
		name string
		q    string
		vars map[string]any
		want []uuid.UUID
	}{
		{"none", `{ me { id } organizations(first: 5) { edges { node { id members(first: 2) { totalCount } } } } }`, nil, nil},
		{"literal", `{ organization(orgId: "` + a.String() + `") { id } }`, nil, []uuid.UUID{a}},
		{"variable", `query($o: ID!) { customers(orgId: $o, search: "x") { totalCount } }`, map[string]any{"o": b.String()}, []uuid.UUID{b}},
		{"aliases and fragments, each once", `query($o: ID!, $p: ID!) {
			x: organization(orgId: $o) { id } y: organization(orgId: $o) { id }
			...F ... on Query { products(orgId: $p) { totalCount } } }
			fragment F on Query { z: customers(orgId: "` + c.String() + `") { totalCount } }`,
			map[string]any{"o": a.String(), "p": b.String()}, []uuid.UUID{a, b, c}},
		{"not a UUID", `{ organization(orgId: "nope") { id } }`, nil, nil},
		{"mutation", `mutation($o: ID!) { updateOrganization(orgId: $o, input: {name: "n"}) { id } }`, map[string]any{"o": c.String()}, []uuid.UUID{c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, op := mustLoad(t, schema, tc.q)
			got := OrgIDs(doc, op, tc.vars)
			slices.SortFunc(got, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
			want := slices.Clone(tc.want)
			slices.SortFunc(want, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
			if !slices.Equal(got, want) {
				t.Fatalf("OrgIDs = %v, want %v", got, want)
			}
		})
	}
}
