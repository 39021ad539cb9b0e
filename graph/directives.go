package graph

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/tenant"
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
		HasRole: func(ctx context.Context, obj any, next graphql.Resolver, role org.Role) (any, error) {
			v, ok := auth.ViewerFrom(ctx)
			if !ok {
				return nil, apperr.ErrUnauthenticated
			}
			orgID, err := tenantOf(ctx, obj)
			if err != nil {
				return nil, err
			}
			// Roles are read per request (never from the token), through the
			// request's loader: a directive on 50 list items (an Organization
			// parent) costs one query; on a root field (an orgId argument) the
			// lookup runs at once instead of waiting for a batch.
			key := org.MemberKey{Org: orgID, User: v.UserID}
			var m *org.Member
			if _, item := obj.(*org.Organization); item {
				m, err = loader.From(ctx).Membership.Load(ctx, key)()
			} else {
				m, err = loader.From(ctx).Membership.Now(ctx, key)
			}
			if err != nil {
				return nil, err
			}
			var have tenant.Role
			if m != nil {
				have = m.Role
			}
			if err := tenant.CheckRole(have, role); err != nil {
				return nil, err
			}
			return next(ctx)
		},
	}
}

// tenantOf finds the organization a field acts in: its orgId argument, or its
// parent Organization.
func tenantOf(ctx context.Context, obj any) (uuid.UUID, error) {
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		if id, ok := fc.Args["orgId"].(uuid.UUID); ok {
			return id, nil
		}
	}
	if o, ok := obj.(*org.Organization); ok && o != nil {
		return o.ID, nil
	}
	return uuid.Nil, errors.New("@hasRole on a field with neither an orgId argument nor an Organization parent")
}

func requireVerified(ctx context.Context) error {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return apperr.ErrUnauthenticated
	}
	u, err := loader.From(ctx).User.Now(ctx, v.UserID)
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
