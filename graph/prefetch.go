package graph

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/sales"
)

// prefetchOrganizations runs, one query each and concurrently, the loads that the
// fields selected on a page of organizations will need. The items' resolvers then
// hit the loaders' cache, so the list's cost does not depend on how its items'
// goroutines happen to be scheduled against the loaders' wait.
func prefetchOrganizations(ctx context.Context, ids []uuid.UUID) {
	prefetchOrganizationFields(ctx, ids, true)
}

// prefetchOrganization does the same for a root field's one organization: its
// members page and counts load now, not after the loaders' wait.
func prefetchOrganization(ctx context.Context, id uuid.UUID) {
	prefetchOrganizationFields(ctx, []uuid.UUID{id}, false)
}

// selectedFields returns the fields the current field selects on its typ
// objects (through fragments): on its connection's nodes (typConnection ->
// edges -> node) when list, else on the object it returns.
func selectedFields(ctx context.Context, typ string, list bool) (*graphql.OperationContext, []graphql.CollectedField) {
	oc := graphql.GetOperationContext(ctx)
	fc := graphql.GetFieldContext(ctx)
	if oc == nil || fc == nil {
		return nil, nil
	}
	sets := []ast.SelectionSet{fc.Field.Selections}
	if list {
		sets = subSelections(oc, sets, []string{typ + "Connection"}, "edges")
		sets = subSelections(oc, sets, []string{typ + "Edge"}, "node")
	}
	var fields []graphql.CollectedField
	for _, set := range sets {
		fields = append(fields, graphql.CollectFields(oc, set, []string{typ})...)
	}
	return oc, fields
}

// subSelections returns the selection sets of the fields named name that sets
// select on a type satisfying satisfies (nil: any).
func subSelections(oc *graphql.OperationContext, sets []ast.SelectionSet, satisfies []string, name string) []ast.SelectionSet {
	var next []ast.SelectionSet
	for _, set := range sets {
		for _, f := range graphql.CollectFields(oc, set, satisfies) {
			if f.Name == name {
				next = append(next, f.Selections)
			}
		}
	}
	return next
}

// prefetchOrganizationFields prefetches what the selected Organization fields
// need for ids: those of a connection's nodes when list.
func prefetchOrganizationFields(ctx context.Context, ids []uuid.UUID, list bool) {
	if len(ids) == 0 {
		return
	}
	oc, fields := selectedFields(ctx, "Organization", list)
	l := loader.From(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	// memberCount next to the first page of every role's members: one
	// statement for both (the dashboard's 2 statements instead of 3).
	counted := false
	for _, f := range fields {
		if f.Name == "memberCount" {
			counted = true
		}
	}
	for _, f := range fields {
		switch f.Name {
		case "owner":
			wg.Go(func() { l.Owner.Prefetch(ctx, ids) })
		case "members":
			role, _ := f.ArgumentMap(oc.Variables)["role"].(string)
			pages, counts := firstPages(oc, f, ids,
				func(id uuid.UUID, n int) org.MembersPageKey {
					return org.MembersPageKey{Org: id, First: n, Role: org.Role(role)}
				},
				func(id uuid.UUID) org.MemberCountKey { return org.MemberCountKey{Org: id, Role: org.Role(role)} })
			if counted && role == "" && len(pages) > 0 {
				l.PrefetchMembersCounted(ctx, pages)
				pages, counts = nil, nil // primed, and counts is the same count
			}
			if len(pages) > 0 {
				wg.Go(func() { l.MembersPage.Prefetch(ctx, pages) })
			}
			if len(counts) > 0 {
				wg.Go(func() { l.MemberCount.Prefetch(ctx, counts) })
			}
		}
	}
	// memberCount with no members page to ride on, or one whose page could
	// not be prefetched: on its own (cached keys are skipped).
	if counted {
		wg.Go(func() { l.MemberCount.Prefetch(ctx, countKeys(ids, "")) })
	}
}

// firstPages returns the keys that a connection field f, selected on each of
// items, needs from its page loader (pageKey: each item's first page of n) and,
// when f selects totalCount, from its count loader (countKey); none when f
// asks for a later page or has an invalid first (its resolver loads or
// refuses it alone).
func firstPages[T, P, C any](oc *graphql.OperationContext, f graphql.CollectedField, items []T, pageKey func(T, int) P, countKey func(T) C) (pages []P, counts []C) {
	n, ok := firstPageSize(oc, f)
	if !ok {
		return nil, nil
	}
	pages = make([]P, len(items))
	for i, it := range items {
		pages[i] = pageKey(it, n)
	}
	if selectedIn(oc, f.Selections, "totalCount") {
		counts = make([]C, len(items))
		for i, it := range items {
			counts[i] = countKey(it)
		}
	}
	return pages, counts
}

// firstPageSize is the page size of a connection field f that asks for its
// first page (no after), as its resolver will read it; false when it asks for
// a later page or its first is invalid (the resolver reports that).
func firstPageSize(oc *graphql.OperationContext, f graphql.CollectedField) (int, bool) {
	args := f.ArgumentMap(oc.Variables)
	if args["after"] != nil {
		return 0, false
	}
	first, ok := intArg(args["first"])
	if !ok {
		return 0, false
	}
	n, err := page.First(first)
	return n, err == nil
}

func countKeys(ids []uuid.UUID, role org.Role) []org.MemberCountKey {
	keys := make([]org.MemberCountKey, len(ids))
	for i, id := range ids {
		keys[i] = org.MemberCountKey{Org: id, Role: role}
	}
	return keys
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
	return selectedIn(oc, fc.Field.Selections, path...)
}

// selectedIn reports whether the selection set reaches path.
func selectedIn(oc *graphql.OperationContext, set ast.SelectionSet, path ...string) bool {
	sets := []ast.SelectionSet{set}
	for _, name := range path {
		if sets = subSelections(oc, sets, nil, name); len(sets) == 0 {
			return false
		}
	}
	return true
}

// prefetchUsers loads, in one query, the users that field (a User field of the
// nodes of the current connection) will need, when it is selected.
func prefetchUsers[T any](ctx context.Context, nodes []T, field string, id func(T) *uuid.UUID) {
	if !selected(ctx, "edges", "node", field) {
		return
	}
	ids := make([]uuid.UUID, 0, len(nodes))
	for _, n := range nodes {
		if p := id(n); p != nil {
			ids = append(ids, *p)
		}
	}
	loader.From(ctx).User.Prefetch(ctx, ids)
}

// prefetchInvitations loads, one query each, the users and organizations the
// selected fields of a page of invitations will need. parent, when the list is
// one organization's, is that organization: nothing to load for it.
func prefetchInvitations(ctx context.Context, invs []*org.Invitation, parent *org.Organization) {
	prefetchUsers(ctx, invs, "invitedBy", func(i *org.Invitation) *uuid.UUID { return i.InvitedByID })
	l := loader.From(ctx)
	if parent != nil {
		l.Org.Prime(ctx, parent.ID, parent)
	} else if selected(ctx, "edges", "node", "organizationName") {
		ids := make([]uuid.UUID, len(invs))
		for k, i := range invs {
			ids[k] = i.OrganizationID
		}
		l.Org.Prefetch(ctx, ids)
	}
}

// prefetchOrders loads, one query each and concurrently, the customers,
// creators and line products the selected fields of a page of orders need.
func prefetchOrders(ctx context.Context, orders []*sales.Order) {
	if len(orders) == 0 {
		return
	}
	l := loader.From(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		prefetchUsers(ctx, orders, "createdBy", func(o *sales.Order) *uuid.UUID { return o.CreatedByID })
	})
	if selected(ctx, "edges", "node", "customer") {
		keys := make([]customer.Key, len(orders))
		for i, o := range orders {
			keys[i] = customer.Key{Org: o.OrganizationID, Customer: o.CustomerID}
		}
		wg.Go(func() { l.Customer.Prefetch(ctx, keys) })
	}
	if selected(ctx, "edges", "node", "lines", "product") {
		var keys []catalog.Key
		for _, o := range orders {
			for _, ln := range o.Lines {
				keys = append(keys, catalog.Key{Org: ln.OrganizationID, Product: ln.ProductID})
			}
		}
		wg.Go(func() { l.Product.Prefetch(ctx, keys) })
	}
}

// prefetchProducts loads, one query each, what the selected fields of a page
// of products need: their creators, and their ledgers' first pages, counts
// and actors. list: ps are a connection's nodes (else a root field's one).
func prefetchProducts(ctx context.Context, ps []*catalog.Product, list bool) {
	if len(ps) == 0 {
		return
	}
	oc, fields := selectedFields(ctx, "Product", list)
	l := loader.From(ctx)
	var users []uuid.UUID
	for _, f := range fields {
		switch f.Name {
		case "createdBy":
			for _, p := range ps {
				if p.CreatedByID != nil {
					users = append(users, *p.CreatedByID)
				}
			}
		case "movements":
			key := func(p *catalog.Product) catalog.Key { return catalog.Key{Org: p.OrganizationID, Product: p.ID} }
			pages, counts := firstPages(oc, f, ps,
				func(p *catalog.Product, n int) catalog.MovementsPageKey {
					return catalog.MovementsPageKey{Key: key(p), First: n}
				}, key)
			l.MovementsPage.Prefetch(ctx, pages)
			l.MovementCount.Prefetch(ctx, counts)
			if len(pages) == 0 || !selectedIn(oc, f.Selections, "edges", "node", "actor") {
				continue
			}
			for _, k := range pages {
				if conn, err := l.MovementsPage.Load(ctx, k)(); err == nil && conn != nil {
					for _, m := range conn.Nodes() {
						if m.ActorID != nil {
							users = append(users, *m.ActorID)
						}
					}
				}
			}
		}
	}
	if len(users) > 0 {
		l.User.Prefetch(ctx, users)
	}
}
