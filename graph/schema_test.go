package graph

import (
	"strings"
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

// TestRootFieldsComeFromAreaFiles: schema.graphqls declares the roots
// empty; every root field comes from an area's file under graph/schema/, whose
// resolvers gqlgen writes to graph/<area>.resolvers.go.
func TestRootFieldsComeFromAreaFiles(t *testing.T) {
	schema := NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
	for _, def := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		for _, f := range def.Fields {
			if len(f.Name) > 1 && f.Name[:2] == "__" {
				continue
			}
			if src := f.Position.Src.Name; !strings.HasPrefix(src, "schema/") {
				t.Errorf("%s.%s is declared in %s, not in an area's file under graph/schema/", def.Name, f.Name, src)
			}
		}
	}
}
