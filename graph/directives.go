package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/loader"
)

// Directives implements the authorization directives. They gate; services hold the rules.
func Directives() DirectiveRoot {
	return DirectiveRoot{
		Public: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			return next(ctx)
		},
		Auth: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			if _, ok := auth.ViewerFrom(ctx); !ok {
				return nil, apperr.ErrUnauthenticated
			}
			return next(ctx)
		},
		Verified: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			if err := requireVerified(ctx); err != nil {
				return nil, err
			}
			return next(ctx)
		},
	}
}

func requireVerified(ctx context.Context) error {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return apperr.ErrUnauthenticated
	}
	u, err := loader.User(ctx, v.UserID)
	if err != nil {
		return err
	}
	if u == nil {
		return apperr.ErrUnauthenticated
	}
	if !u.EmailVerified() {
		return apperr.New(apperr.Forbidden, "verify your email address first")
	}
	return nil
}

// viewer returns the signed-in viewer; the directives have already required one.
func viewer(ctx context.Context) (auth.Viewer, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return auth.Viewer{}, apperr.ErrUnauthenticated
	}
	return v, nil
}

// done turns a service's error into a Boolean! result.
func done(err error) (bool, error) { return err == nil, err }
