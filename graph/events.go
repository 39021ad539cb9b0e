package graph

import (
	"context"

	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/loader"
)

// eventSubject reads the object an event changed, as it is now, through the
// event's loaders (nil when it is gone or the change has none). The feed's
// subscribers in a process share one read (audit.FeedEvent.Subject).
func (r *Resolver) eventSubject(ctx context.Context, e *audit.FeedEvent) (any, error) {
	id, err := uuid.Parse(e.TargetID)
	if err != nil {
		return nil, nil // an import: no one object
	}
	org, l := e.OrganizationID, loader.From(ctx)
	var v any
	switch e.TargetType {
	case "member":
		m, err := loader.Membership(ctx, org, id)
		if err != nil || m == nil {
			return nil, err
		}
		c := *m // the loader's copy stays as it was read
		return withUser(ctx)(&c, nil)
	case "invitation":
		v, err = nilIfNone(r.Orgs.Invitation(ctx, org, id))
	case "customer":
		v, err = nilIfNone(l.Customer.Now(ctx, customer.Key{Org: org, Customer: id}))
	case "customer_note":
		v, err = nilIfNone(r.CRM.Note(ctx, org, id))
	case "product":
		v, err = nilIfNone(l.Product.Now(ctx, catalog.Key{Org: org, Product: id}))
	case "order":
		v, err = nilIfNone(r.Sales.Get(ctx, org, id))
	case "organization":
		v, err = nilIfNone(l.Org.Now(ctx, org))
	}
	return v, err
}

// nilIfNone turns a typed nil pointer, or NOT_FOUND, into a nil interface
// (a union's null).
func nilIfNone[T any](p *T, err error) (any, error) {
	if e, ok := apperr.As(err); ok && e.Code == apperr.NotFound {
		return nil, nil
	}
	if err != nil || p == nil {
		return nil, err
	}
	return p, nil
}
