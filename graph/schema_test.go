package graph

import (
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

var authDirectives = map[string]bool{"public": true, "auth": true, "verified": true, "hasRole": true}

// TestEveryRootFieldIsAuthorized fails on a root field without exactly one
// authorization directive, and on a tenant field (one taking orgId) without @hasRole.
func TestEveryRootFieldIsAuthorized(t *testing.T) {
	schema := NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
	roots := []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription}
	checked := 0
	for _, def := range roots {
		if def == nil {
			continue
		}
		for _, f := range def.Fields {
			if len(f.Name) > 1 && f.Name[:2] == "__" {
				continue
			}
			checked++
			var found []string
			for _, d := range f.Directives {
				if authDirectives[d.Name] {
					found = append(found, d.Name)
				}
			}
			if len(found) != 1 {
				t.Errorf("%s.%s has authorization directives %v, want exactly one of @public @auth @verified @hasRole", def.Name, f.Name, found)
			}
			if f.Arguments.ForName("orgId") != nil && (len(found) != 1 || found[0] != "hasRole") {
				t.Errorf("%s.%s takes orgId but is not gated by @hasRole", def.Name, f.Name)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d root fields checked: the schema walk is broken", checked)
	}
}
