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
// @auth, @verified and @hasRole hand the viewer they verified to the field's
// resolver, which reads it with me; @public hands over none.
func Directives() DirectiveRoot {
	return DirectiveRoot{
		Public: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			return next(ctx)
		},
		Auth: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			v, ok := auth.ViewerFrom(ctx)
			if !ok {
				return nil, apperr.ErrUnauthenticated
			}
			return next(handOver(ctx, v))
		},
		Verified: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			v, err := verifiedViewer(ctx)
			if err != nil {
				return nil, err
			}
			return next(handOver(ctx, v))
		},
		HasRole: func(ctx context.Context, obj any, next graphql.Resolver, role org.Role) (any, error) {
			orgID, err := tenantOf(ctx, obj)
			if err != nil {
				return nil, err
			}
			// A directive on 50 list items (an Organization parent) costs one
			// query; on a root field (an orgId argument) the lookup runs at once.
			_, item := obj.(*org.Organization)
			v, m, err := viewerMembership(ctx, orgID, item)
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
			return next(handOver(ctx, v))
		},
	}
}

// gatedKey carries the viewer an authorization directive verified to the
// resolver of the same field.
type gatedKey struct{}

func handOver(ctx context.Context, v auth.Viewer) context.Context {
	return context.WithValue(ctx, gatedKey{}, v)
}

// me returns the viewer that the field's @auth, @verified or @hasRole verified.
// It fails closed: a resolver calling it on a field none of them gates (a
// @public field, or a root field missing its directive, which
// TestEveryRootFieldIsAuthorized forbids) panics before it calls any service,
// whether or not the request carries a token; the recover function logs the
// field and answers INTERNAL_SERVER_ERROR.
func me(ctx context.Context) auth.Viewer {
	if v, ok := ctx.Value(gatedKey{}).(auth.Viewer); ok {
		return v
	}
	field := "a field"
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Field.Field != nil {
		field = fc.Object + "." + fc.Field.Name
	}
	panic("graph: me(ctx) in " + field + ", which no @auth, @verified or @hasRole gates")
}

// viewerMembership reads the viewer's membership in orgID (nil: not a member)
// through the request's loader: batched with the other items of a list, or at
// once. Roles are read per request, never from the token. No viewer:
// UNAUTHENTICATED.
func viewerMembership(ctx context.Context, orgID uuid.UUID, batched bool) (auth.Viewer, *org.Member, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return auth.Viewer{}, nil, apperr.ErrUnauthenticated
	}
	key := org.MemberKey{Org: orgID, User: v.UserID}
	var m *org.Member
	var err error
	if batched {
		m, err = loader.From(ctx).Membership.Load(ctx, key)()
	} else {
		m, err = loader.From(ctx).Membership.Now(ctx, key)
	}
	return v, m, err
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

// verifiedViewer returns the viewer if their email is verified.
func verifiedViewer(ctx context.Context) (auth.Viewer, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return auth.Viewer{}, apperr.ErrUnauthenticated
	}
	u, err := loader.From(ctx).User.Now(ctx, v.UserID)
	if err != nil {
		return auth.Viewer{}, err
	}
	if u == nil {
		return auth.Viewer{}, apperr.ErrUnauthenticated
	}
	if !u.EmailVerified() {
		return auth.Viewer{}, apperr.New(apperr.Forbidden, "verify your email address first")
	}
	return v, nil
}

// done turns a service's error into a Boolean! result.
func done(err error) (bool, error) { return err == nil, err }
