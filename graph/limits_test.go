package graph

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// A schema with a cycle, so that any depth can be written.
var cyclic = gqlparser.MustLoadSchema(&ast.Source{Name: "cyclic.graphqls", Input: `
type Query { node: Node }
type Node { name: String child: Node }
`})

// nested is `{ node { child { ... { name } } } }` with the given depth.
func nested(depth int) string {
	return "{ node { " + strings.Repeat("child { ", depth-2) + "name" + strings.Repeat(" }", depth-1) + " }"
}

func measure(t *testing.T, schema *ast.Schema, q string) Shape {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(schema, q)
	if errs != nil {
		t.Fatalf("invalid test query %s: %v", q, errs)
	}
	return Measure(doc, doc.Operations[0])
}

func TestDepthLimitBoundary(t *testing.T) {
	l := shapeLimits{depth: DefaultLimits.Depth, aliases: DefaultLimits.Aliases}
	for _, tc := range []struct {
		depth int
		ok    bool
	}{{10, true}, {11, false}} {
		q := nested(tc.depth)
		if got := measure(t, cyclic, q).Depth; got != tc.depth {
			t.Fatalf("depth of %s = %d, want %d", q, got, tc.depth)
		}
		doc, _ := gqlparser.LoadQuery(cyclic, q)
		err := l.check(doc, doc.Operations[0])
		if tc.ok != (err == nil) {
			t.Fatalf("depth %d: error %v, want ok=%v", tc.depth, err, tc.ok)
		}
		if err != nil && err.Extensions["code"] != CodeDepthLimit {
			t.Fatalf("depth %d: code %v", tc.depth, err.Extensions["code"])
		}
	}
}

func TestDepthCountsFragmentsAsInlined(t *testing.T) {
	// 1 + 4 through a spread, an inline fragment and a nested spread = depth 11.
	q := `{ node { ...A } }
fragment A on Node { child { ... on Node { child { ...B } } } }
fragment B on Node { child { child { child { child { child { child { child { name } } } } } } } }`
	if got := measure(t, cyclic, q).Depth; got != 11 {
		t.Fatalf("depth through fragments = %d, want 11", got)
	}
	// A fragment used at two depths counts at the deeper one.
	q = `{ node { ...F child { child { ...F } } } } fragment F on Node { child { name } }`
	if got := measure(t, cyclic, q).Depth; got != 5 {
		t.Fatalf("depth with a reused fragment = %d, want 5", got)
	}
}

func TestFragmentCyclesEndAndAliasesCountPerUse(t *testing.T) {
	// Validation refuses cycles; Measure must not loop on them anyway.
	doc, err := parser.ParseQuery(&ast.Source{Input: `
{ node { ...A } }
fragment A on Node { a1: name child { ...B } }
fragment B on Node { b1: name child { ...A } }`})
	if err != nil {
		t.Fatal(err)
	}
	s := Measure(doc, doc.Operations[0])
	if s.Depth != 3 || s.Aliases != 2 {
		t.Fatalf("cyclic fragments: %+v, want depth 3 (node, A's child, B's child; A again not followed) and 2 aliases", s)
	}

	// One fragment with 2 aliases spread 3 times: 6, plus 1 outside.
	q := `{ x: node { ...F } node { ...F child { ...F } } }
fragment F on Node { a: name b: name }`
	if got := measure(t, cyclic, q).Aliases; got != 7 {
		t.Fatalf("aliases = %d, want 7", got)
	}
	// Writing the field's own name is not an alias; a deep fan-out of fragments is
	// counted without walking it (each fragment once).
	var b strings.Builder
	b.WriteString("{ node { ...F0 } }\n")
	for i := range 20 {
		fmt.Fprintf(&b, "fragment F%d on Node { child { ...F%d ...F%d } }\n", i, i+1, i+1)
	}
	b.WriteString("fragment F20 on Node { n: name name: name }")
	s = measure(t, cyclic, b.String())
	if s.Aliases != 1<<20 || s.Depth != 22 {
		t.Fatalf("fan-out: %+v, want 2^20 aliases, depth 22", s)
	}
}

func TestAliasLimitBoundary(t *testing.T) {
	l := shapeLimits{depth: DefaultLimits.Depth, aliases: DefaultLimits.Aliases}
	for _, n := range []int{30, 31} {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, "a%d: node { name } ", i)
		}
		b.WriteString("}")
		doc, _ := gqlparser.LoadQuery(cyclic, b.String())
		err := l.check(doc, doc.Operations[0])
		if (n <= 30) != (err == nil) || (err != nil && err.Extensions["code"] != CodeAliasLimit) {
			t.Fatalf("%d aliases: %v", n, err)
		}
	}
}

func TestIntrospectionIsExemptFromDepth(t *testing.T) {
	schema := NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
	q := `{ __type(name: "User") { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }`
	s := measure(t, schema, q)
	if s.Depth != 1 || !s.Introspects {
		t.Fatalf("introspection shape %+v", s)
	}
	if err := (shapeLimits{depth: 10, aliases: 30}).check(mustLoad(t, schema, q)); err == nil || err.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("introspection with introspection off: %v", err)
	}
	if err := (shapeLimits{depth: 10, aliases: 30, introspection: true}).check(mustLoad(t, schema, q)); err != nil {
		t.Fatalf("introspection with introspection on: %v", err)
	}
}

func mustLoad(t *testing.T, schema *ast.Schema, q string) (*ast.QueryDocument, *ast.OperationDefinition) {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(schema, q)
	if errs != nil {
		t.Fatal(errs)
	}
	return doc, doc.Operations[0]
}

// TestConnectionsCostTheirPageSize: the real schema's connections cost `first` times
// their selection, with the default page size when `first` is absent.
func TestConnectionsCostTheirPageSize(t *testing.T) {
	es := pricedSchema{NewExecutableSchema(Config{Resolvers: &Resolver{}})}
	cost := func(q string, vars map[string]any) int {
		_, op := mustLoad(t, es.Schema(), q)
		return complexity.Calculate(context.Background(), es, op, vars)
	}
	for _, tc := range []struct {
		q    string
		vars map[string]any
		want int
	}{
		{`{ me { id } }`, nil, 2},
		{`{ organizations(first: 7) { totalCount } }`, nil, 7},
		{`{ organizations { totalCount } }`, nil, 20}, // default page
		{`query($n: Int) { organizations(first: $n) { totalCount } }`, map[string]any{"n": int64(3)}, 3},
		{`{ organizations(first: 1000) { totalCount } }`, nil, 100}, // what a page can hold
		{`{ organizations(first: 2) { edges { node { members(first: 5) { edges { node { role } } } } } } }`, nil, 2 * (1 + 1 + 5*(1+1+1))},
		// The dashboard (internal/app/statements_test.go): 20 x (1 + 1 + (1 + 2 + 1 + 50 x 5)).
		{`{ organizations(first: 20) { edges { node {
			viewerRole owner { email } memberCount
			members(first: 50) { edges { node { role user { email } } } } } } } }`, nil, 5120},
	} {
		if got := cost(tc.q, tc.vars); got != tc.want {
			t.Errorf("cost of %s = %d, want %d", tc.q, got, tc.want)
		}
	}
}
