// Package graph is the GraphQL edge: the generated executor, thin resolvers,
// the authorization directives and the error presenter.
package graph

//go:generate go tool gqlgen generate

import (
	"tenantgraph/internal/account"
	"tenantgraph/internal/audit"
	"tenantgraph/internal/org"
)

// Resolver holds the services; resolvers only translate to and from them.
type Resolver struct {
	Accounts *account.Service
	Orgs     *org.Service
	Audit    *audit.Service
}
