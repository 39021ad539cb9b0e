package graph

import (
	"context"
	"math/rand/v2"
	"strings"
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
		// A single value for a list variable: gqlparser makes it a []string.
		{`query($t: [String!]) { f(items: [{tags: $t}]) }`, map[string]any{"t": "b\x00"}, "items.tags"},
		{`query($i: [Item!]) { f(items: $i) }`, map[string]any{"i": map[string]any{"name": "c\x00"}}, "items.name"},
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
		case tc.field != "" && gerr == nil:
			t.Errorf("%s %v: accepted, want BAD_USER_INPUT on %s", tc.query, tc.vars, tc.field)
		case tc.field != "" && (gerr.Extensions["field"] != tc.field || gerr.Extensions["code"] != "BAD_USER_INPUT"):
			t.Errorf("%s: %v %v, want BAD_USER_INPUT on %s", tc.query, gerr, gerr.Extensions, tc.field)
		}
	}
}

var enumSchema = gqlparser.MustLoadSchema(&ast.Source{Name: "enums.graphqls", Input: `
enum Size { SMALL LARGE }
input Box { size: Size sizes: [Size!] inner: Box }
type Query { f(box: Box, sizes: [Size], size: Size): String }
`})

// exactEnums finds an enum value in another case wherever a variable holds it:
// directly, in a list (or a single value coerced to one), in an input object,
// nested; and accepts exact values.
func TestExactEnumsWalksVariables(t *testing.T) {
	e := &exactEnums{schema: enumSchema}
	for _, tc := range []struct {
		query string
		vars  map[string]any
		bad   string // "" when accepted, else the value refused
	}{
		{`query($s: Size) { f(size: $s) }`, map[string]any{"s": "SMALL"}, ""},
		{`query($s: Size) { f(size: $s) }`, map[string]any{"s": "small"}, "small"},
		{`query($s: [Size]) { f(sizes: $s) }`, map[string]any{"s": []any{"SMALL", "Large"}}, "Large"},
		{`query($s: [Size]) { f(sizes: $s) }`, map[string]any{"s": "lARGE"}, "lARGE"},
		{`query($b: Box) { f(box: $b) }`, map[string]any{"b": map[string]any{"size": "LARGE", "sizes": []any{"SMALL"}}}, ""},
		{`query($b: Box) { f(box: $b) }`, map[string]any{"b": map[string]any{"inner": map[string]any{"sizes": []any{"SMALL", "small"}}}}, "small"},
		{`query($b: Box) { f(box: $b) }`, map[string]any{"b": nil}, ""},
		{`query($s: Size = SMALL) { f(size: $s) }`, nil, ""},
	} {
		doc, errs := gqlparser.LoadQuery(enumSchema, tc.query)
		if errs != nil {
			t.Fatalf("%s: %v", tc.query, errs)
		}
		vars, err := validator.VariableValues(enumSchema, doc.Operations[0], tc.vars)
		if err != nil {
			t.Fatalf("%s %v: gqlparser refused it itself: %v", tc.query, tc.vars, err)
		}
		oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], Variables: vars}
		gerr := e.MutateOperationContext(context.Background(), oc)
		switch {
		case tc.bad == "" && gerr != nil:
			t.Errorf("%s %v: refused: %v", tc.query, tc.vars, gerr)
		case tc.bad != "" && (gerr == nil || gerr.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(gerr.Message, `"`+tc.bad+`"`)):
			t.Errorf("%s %v: %v, want GRAPHQL_VALIDATION_FAILED naming %q", tc.query, tc.vars, gerr, tc.bad)
		}
	}
}
