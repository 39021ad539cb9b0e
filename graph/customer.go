package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/sales"
)

// customerPatch translates updateCustomer's input: an absent field is left
// alone, an explicit null clears it.
func customerPatch(in UpdateCustomerInput) customer.Patch {
	p := customer.Patch{Name: in.Name, Status: in.Status,
		Email:    opt(in.Email),
		Phone:    opt(in.Phone),
		Company:  opt(in.Company),
		Assignee: opt(in.AssigneeID),
	}
	if in.Tags != nil {
		p.Tags = &in.Tags
	}
	return p
}

// fieldErrors turns an apperr.List (several refused inputs) into one GraphQL
// error each, every one with its own code and extensions.field, and each with
// the field's path and location (gqlgen would set them on the first only);
// other errors pass unchanged.
func fieldErrors(ctx context.Context, err error) error {
	l, ok := err.(apperr.List)
	if !ok {
		return err
	}
	var locations []gqlerror.Location
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Field.Position != nil {
		locations = []gqlerror.Location{{Line: fc.Field.Position.Line, Column: fc.Field.Position.Column}}
	}
	path := graphql.GetPath(ctx)
	out := make(gqlerror.List, len(l))
	for i, e := range l {
		out[i] = &gqlerror.Error{Err: e, Message: e.Message, Path: path, Locations: locations}
	}
	return out
}

// prefetchCustomers loads what the selected fields of a page of customers
// need, before the items resolve: the first page of each one's notes (one
// query for the page), then every user shown (assignees, creators, the notes'
// authors: one query). The page's cost does not grow with its length.
func prefetchCustomers(ctx context.Context, cs []*customer.Customer) {
	prefetchCustomerFields(ctx, cs, true)
}

// prefetchCustomer does the same for a root field's one customer.
func prefetchCustomer(ctx context.Context, c *customer.Customer) {
	if c != nil {
		prefetchCustomerFields(ctx, []*customer.Customer{c}, false)
	}
}

// prefetchCustomerFields prefetches what the selected Customer fields need for
// cs: those of a connection's nodes when list.
func prefetchCustomerFields(ctx context.Context, cs []*customer.Customer, list bool) {
	if len(cs) == 0 {
		return
	}
	oc, fields := selectedFields(ctx, "Customer", list)
	l := loader.From(ctx)
	var users []uuid.UUID
	for _, f := range fields {
		switch f.Name {
		case "assignee":
			for _, c := range cs {
				if c.AssigneeID != nil {
					users = append(users, *c.AssigneeID)
				}
			}
		case "createdBy":
			for _, c := range cs {
				if c.CreatedByID != nil {
					users = append(users, *c.CreatedByID)
				}
			}
		case "notes":
			key := func(c *customer.Customer) customer.Key { return customer.Key{Org: c.OrganizationID, Customer: c.ID} }
			pages, counts := firstPages(oc, f, cs,
				func(c *customer.Customer, n int) customer.NotesPageKey {
					return customer.NotesPageKey{Key: key(c), First: n}
				}, key)
			l.NotesPage.Prefetch(ctx, pages) // with their authors
			l.NoteCount.Prefetch(ctx, counts)
		case "lifetimeValue":
			keys := make([]sales.CustomerKey, len(cs))
			for i, c := range cs {
				keys[i] = salesKey(c)
			}
			l.Lifetime.Prefetch(ctx, keys)
		case "orders":
			pages, counts := firstPages(oc, f, cs,
				func(c *customer.Customer, n int) loader.OrdersPageKey {
					return loader.OrdersPageKey{CustomerKey: salesKey(c), First: n}
				}, salesKey)
			l.OrdersPage.Prefetch(ctx, pages)
			l.OrderCount.Prefetch(ctx, counts)
			for _, c := range cs {
				l.Customer.Prime(ctx, customer.Key{Org: c.OrganizationID, Customer: c.ID}, c)
			}
			var products []catalog.Key
			for _, k := range pages {
				conn, err := l.OrdersPage.Load(ctx, k)()
				if err != nil || conn == nil {
					continue
				}
				for _, o := range conn.Nodes() {
					if o.CreatedByID != nil && selectedIn(oc, f.Selections, "edges", "node", "createdBy") {
						users = append(users, *o.CreatedByID)
					}
					if selectedIn(oc, f.Selections, "edges", "node", "lines", "product") {
						for _, ln := range o.Lines {
							products = append(products, catalog.Key{Org: ln.OrganizationID, Product: ln.ProductID})
						}
					}
				}
			}
			if len(products) > 0 {
				l.Product.Prefetch(ctx, products)
			}
		}
	}
	if len(users) > 0 {
		l.User.Prefetch(ctx, users)
	}
}

func salesKey(c *customer.Customer) sales.CustomerKey {
	return sales.CustomerKey{Org: c.OrganizationID, Customer: c.ID}
}

// loadProduct is org's product id through the request's loader: a product the
// organization no longer has is an internal error (lines and sales keep theirs
// by foreign key).
func loadProduct(ctx context.Context, org, id uuid.UUID) (*catalog.Product, error) {
	p, err := loader.From(ctx).Product.Load(ctx, catalog.Key{Org: org, Product: id})()
	if err == nil && p == nil {
		return nil, fmt.Errorf("product %s not found", id)
	}
	return p, err
}
