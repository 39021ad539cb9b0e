package graph

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	gqlast "github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/graph/scalar"
)

// TestSequentialListsCannotWait holds graph/gqlgen's rewrite to its rule,
// derived here again from the generated code rather than from gqlgen's model:
// a list marshalled by marshalSequentially must reach, through the generated
// functions it calls, no resolver call (ec.Resolvers), no directive
// (ec.Directives) and no method of the bound object given a context, for in a
// loop each of those could wait (a loader's batch window) once per element.
// It also fails when no business list is sequential any more, so that a
// change to gqlgen's output the rewrite no longer matches cannot pass
// unnoticed.
func TestSequentialListsCannotWait(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "generated.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string][]string{} // executionContext method -> the ec methods it calls
	waits := map[string]string{}   // executionContext method -> what in it may wait
	sequential := []string{}       // list marshallers calling marshalSequentially
	for _, d := range file.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || fn.Body == nil {
			continue
		}
		name := fn.Name.Name
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				x, ok := n.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch {
				case x.Name == "ec" && (n.Sel.Name == "Resolvers" || n.Sel.Name == "Directives"):
					waits[name] = "ec." + n.Sel.Name
				case x.Name == "ec":
					calls[name] = append(calls[name], n.Sel.Name)
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "marshalSequentially" {
					sequential = append(sequential, name)
				}
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "obj" {
					for _, a := range n.Args {
						if id, ok := a.(*ast.Ident); ok && id.Name == "ctx" {
							waits[name] = "obj." + sel.Sel.Name + "(ctx)"
						}
					}
				}
			}
			return true
		})
	}

	// reach returns what in fn, or in a function fn calls, may wait, with the
	// chain of calls to it; "" when nothing.
	memo := map[string]string{}
	var reach func(fn string) string
	reach = func(fn string) string {
		if v, ok := memo[fn]; ok {
			return v
		}
		memo[fn] = "" // a cycle adds nothing of its own
		v := ""
		if w, ok := waits[fn]; ok {
			v = fn + ": " + w
		} else {
			for _, c := range calls[fn] {
				if w := reach(c); w != "" {
					v = fn + " -> " + w
					break
				}
			}
		}
		memo[fn] = v
		return v
	}

	business := 0
	sort.Strings(sequential)
	for _, fn := range sequential {
		if w := reach(fn); w != "" {
			t.Errorf("%s marshals its elements one after the other, but they may wait: %s", fn, w)
		}
		if !strings.Contains(fn, "introspection") {
			business++
		}
		t.Logf("sequential: %s", fn)
	}
	if business == 0 {
		t.Errorf("no list of the schema's own types is marshalled sequentially: graph/gqlgen's rewrite no longer matches the generated code")
	}
	// The rule, checked against a list known to wait: customers have resolvers.
	for name := range calls {
		if strings.HasPrefix(name, "marshalNCustomerEdge2ᚕ") && reach(name) == "" {
			t.Errorf("%s: the check finds nothing that waits under a customer, whose assignee is a resolver", name)
		}
	}
}

// TestWriteResponseIsGqlgens: writeResponse writes what gqlgen's transports
// write (json.Marshal of the response), byte for byte.
func TestWriteResponseIsGqlgens(t *testing.T) {
	for _, resp := range []*graphql.Response{
		{Data: json.RawMessage(`{"me":{"id":"1","name":"Ann \"A\""}}`)},
		{},
		{Errors: gqlerror.List{{Message: "no", Path: gqlast.Path{gqlast.PathName("me")}, Extensions: map[string]any{"code": "NOT_FOUND"}}},
			Data: json.RawMessage(`{"me":null}`)},
		{Data: json.RawMessage(`{"a":1}`), Extensions: map[string]any{"cost": 3}},
	} {
		want, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if !writeResponse(&got, resp) {
			t.Fatalf("wrote nothing for %s", want)
		}
		if got.String() != string(want) {
			t.Errorf("wrote %s, want %s", got.String(), want)
		}
	}
}

// TestJSONScalarIsCompact: a JSON value (an audit event's metadata, read from
// jsonb with a space after each colon and comma) is written compact, as
// gqlgen's json.Marshal of the response wrote it before writeResponse.
func TestJSONScalarIsCompact(t *testing.T) {
	for in, want := range map[string]string{
		`{"after": {"role": "ADMIN"}, "ids": [1, 2]}`: `{"after":{"role":"ADMIN"},"ids":[1,2]}`,
		``:          `null`,
		`{"broken"`: `null`,
	} {
		var b bytes.Buffer
		scalar.MarshalJSON(json.RawMessage(in)).MarshalGQL(&b)
		if b.String() != want {
			t.Errorf("MarshalJSON(%q) wrote %s, want %s", in, b.String(), want)
		}
	}
}
