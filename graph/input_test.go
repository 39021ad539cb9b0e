package graph

import (
	"context"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

// utf8Checker agrees with utf8.Valid however the bytes are cut into pieces.
func TestUTF8CheckerAgreesWithValidAcrossPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "€", "😀", "\xff", "\xc3", "\x80", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf"}
	for i := 0; i < 20000; i++ {
		var s []byte
		for n := rng.IntN(8); n > 0; n-- {
			s = append(s, alphabet[rng.IntN(len(alphabet))]...)
		}
		var c utf8Checker
		rest := s
		for len(rest) > 0 {
			k := 1 + rng.IntN(len(rest))
			c.write(rest[:k])
			rest = rest[k:]
		}
		if c.valid() != utf8.Valid(s) {
			t.Fatalf("%q: checker says valid=%v", s, c.valid())
		}
	}
}

var listSchema = gqlparser.MustLoadSchema(&ast.Source{Name: "lists.graphqls", Input: `
input Item { name: String tags: [String!] }
type Query { f(items: [Item!], word: String): String }
`})

// inputBytes walks lists of input objects and lists of strings, inline and in variables.
func TestInputBytesWalksListsAndObjects(t *testing.T) {
	for _, tc := range []struct {
		query string
		vars  map[string]any
		field string // "" when accepted
	}{
		{`{ f(items: [{name: "ok", tags: ["a", "b"]}], word: "fine") }`, nil, ""},
		{`{ f(items: [{name: "ok"}, {tags: ["a", "b\u0000"]}]) }`, nil, "items.tags"},
		{`query($t: String!) { f(items: [{tags: ["a", $t]}]) }`, map[string]any{"t": "\xff"}, "items.tags"},
		{`query($i: [Item!]) { f(items: $i) }`, map[string]any{"i": []any{map[string]any{"name": "x"}, map[string]any{"name": "y\x00"}}}, "items.name"},
		{`query($w: String = "a\u0000") { f(word: $w) }`, nil, "word"},
	} {
		doc, errs := gqlparser.LoadQuery(listSchema, tc.query)
		if errs != nil {
			t.Fatalf("%s: %v", tc.query, errs)
		}
		vars, err := validator.VariableValues(listSchema, doc.Operations[0], tc.vars)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], Variables: vars}
		gerr := inputBytes{}.MutateOperationContext(context.Background(), oc)
		switch {
		case tc.field == "" && gerr != nil:
			t.Errorf("%s: refused: %v", tc.query, gerr)
		case tc.field != "" && (gerr == nil || gerr.Extensions["field"] != tc.field || gerr.Extensions["code"] != "BAD_USER_INPUT"):
			t.Errorf("%s: %v %v, want BAD_USER_INPUT on %s", tc.query, gerr, gerr.Extensions, tc.field)
		}
	}
}
