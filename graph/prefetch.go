package graph

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/page"
)

// prefetchOrganizations runs, one query each and concurrently, the loads that the
// fields selected on a page of organizations will need. The items' resolvers then
// hit the loaders' cache, so the list's cost does not depend on how its items'
// goroutines happen to be scheduled against the loaders' wait.
func prefetchOrganizations(ctx context.Context, ids []uuid.UUID) {
	oc := graphql.GetOperationContext(ctx)
	fc := graphql.GetFieldContext(ctx)
	if oc == nil || fc == nil || len(ids) == 0 {
		return
	}
	l := loader.From(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, edges := range graphql.CollectFields(oc, fc.Field.Selections, []string{"OrganizationConnection"}) {
		if edges.Name != "edges" {
			continue
		}
		for _, node := range graphql.CollectFields(oc, edges.Selections, []string{"OrganizationEdge"}) {
			if node.Name != "node" {
				continue
			}
			for _, f := range graphql.CollectFields(oc, node.Selections, []string{"Organization"}) {
				switch f.Name {
				case "owner":
					wg.Go(func() { l.PrefetchOwners(ctx, ids) })
				case "memberCount":
					wg.Go(func() { l.PrefetchMemberCounts(ctx, ids) })
				case "members":
					args := f.ArgumentMap(oc.Variables)
					if args["after"] != nil {
						continue
					}
					first, ok := intArg(args["first"])
					if !ok {
						continue
					}
					n, err := page.First(first)
					if err != nil {
						continue
					}
					role, _ := args["role"].(string)
					keys := make([]org.MembersPageKey, len(ids))
					for i, id := range ids {
						keys[i] = org.MembersPageKey{Org: id, First: n, Role: org.Role(role)}
					}
					wg.Go(func() { l.PrefetchMemberPages(ctx, keys) })
				}
			}
		}
	}
}

// intArg reads an optional Int argument as the resolvers receive it.
func intArg(v any) (*int, bool) {
	var n int64
	switch x := v.(type) {
	case nil:
		return nil, true
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		n = int64(x)
	case json.Number:
		var err error
		if n, err = x.Int64(); err != nil {
			return nil, false
		}
	default:
		return nil, false
	}
	i := int(n)
	return &i, true
}

// selected reports whether the current field's selection reaches path
// (through fragments too), e.g. selected(ctx, "edges", "node", "actor").
func selected(ctx context.Context, path ...string) bool {
	oc := graphql.GetOperationContext(ctx)
	fc := graphql.GetFieldContext(ctx)
	if oc == nil || fc == nil {
		return false
	}
	sets := []ast.SelectionSet{fc.Field.Selections}
	for _, name := range path {
		var next []ast.SelectionSet
		for _, set := range sets {
			for _, f := range graphql.CollectFields(oc, set, nil) {
				if f.Name == name {
					next = append(next, f.Selections)
				}
			}
		}
		if len(next) == 0 {
			return false
		}
		sets = next
	}
	return true
}

// prefetchInvitations loads, one query each, the users and organizations the
// selected fields of a list of invitations will need. parent, when the list is
// one organization's, is that organization: nothing to load for it.
func prefetchInvitations(ctx context.Context, invs []*org.Invitation, parent *org.Organization, path ...string) {
	l := loader.From(ctx)
	if selected(ctx, append(path, "invitedBy")...) {
		var ids []uuid.UUID
		for _, i := range invs {
			if i.InvitedByID != nil {
				ids = append(ids, *i.InvitedByID)
			}
		}
		l.PrefetchUsers(ctx, ids)
	}
	if parent != nil {
		l.Org.Prime(ctx, parent.ID, parent)
	} else if selected(ctx, append(path, "organizationName")...) {
		ids := make([]uuid.UUID, len(invs))
		for k, i := range invs {
			ids[k] = i.OrganizationID
		}
		l.PrefetchOrgs(ctx, ids)
	}
}
