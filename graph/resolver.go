// Package graph is the GraphQL edge: the generated executor, thin resolvers,
// the authorization directives and the error presenter.
package graph

//go:generate go run ./gqlgen

import (
	"context"
	"fmt"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/account"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/sales"
)

// Resolver holds the services; resolvers only translate to and from them.
type Resolver struct {
	Accounts *account.Service
	Orgs     *org.Service
	Audit    *audit.Service
	CRM      *customer.Service // customers and their notes
	Catalog  *catalog.Service  // products and their stock
	Sales    *sales.Service    // orders and sales figures
	Feed     *audit.Feed       // the organizations' live events

	// Set by NewHandler.
	sockets *sockets
	present func(ctx context.Context, err error) *gqlerror.Error
}

// CloseSockets closes the websockets of the subscriptions (the server is
// shutting down: clients reconnect elsewhere and resume with after).
func (r *Resolver) CloseSockets() {
	if r.sockets != nil {
		r.sockets.closeAll()
	}
}

// SocketCounts returns the signed-in websockets and the subscriptions open
// now in this process (for the metrics).
func (r *Resolver) SocketCounts() (sockets, subscriptions int) {
	if r.sockets == nil {
		return 0, 0
	}
	return r.sockets.counts()
}

// withUser gives a membership returned by a mutation its user (Member.user is a
// plain field, filled where members are read with their users), through the
// request's loader.
func withUser(ctx context.Context) func(*org.Member, error) (*org.Member, error) {
	return func(m *org.Member, err error) (*org.Member, error) {
		if err != nil || m == nil || m.User != nil {
			return m, err
		}
		u, err := loader.From(ctx).User.Now(ctx, m.UserID)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, fmt.Errorf("member %s has no user", m.UserID)
		}
		m.User = u
		return m, nil
	}
}
