package graph

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/fairshare"
)

// LimitOrganization names the per-organization share of the process in a
// refusal's extensions.limit and in tenantgraph_rate_limit_refusals_total.
const LimitOrganization = "organization_concurrent"

// fairShare counts each query and mutation against the organizations its root
// fields name by their orgId argument (literal or variable, aliases and
// fragments included) and of which the viewer is a member: at most
// l.Slots() operations of one organization run at once, the next wait in
// arrival order, briefly, and are refused with RATE_LIMITED
// (extensions.limit LimitOrganization, extensions.max the slots) when their
// turn does not come. An operation naming several organizations takes a slot
// of each (fairshare.Limiter.Acquire: in a fixed order); one naming none, or
// only organizations the viewer is not in (which its fields will refuse with
// NOT_FOUND at once), is not counted, so that no one can take another
// organization's slots. Subscriptions are not counted: they would hold a slot
// for their lifetime. The membership is read through the request's loader,
// where the fields' @hasRole finds it again: a member's operation sends no
// extra statement.
func fairShare(l *fairshare.Limiter, present graphql.ErrorPresenterFunc) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		if oc == nil || oc.Operation == nil || oc.Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		keys := memberOrgs(ctx, OrgIDs(oc.Doc, oc.Operation, oc.Variables))
		if len(keys) == 0 {
			return next(ctx)
		}
		release, err := l.Acquire(ctx, keys)
		if err != nil {
			msg := fmt.Sprintf("too many requests of this organization at once: at most %d are served at a time, and no slot came free in time: retry shortly", l.Slots())
			if errors.Is(err, fairshare.ErrQueueFull) {
				msg = fmt.Sprintf("too many requests of this organization waiting: at most %d are served at a time: retry shortly", l.Slots())
			}
			e := &apperr.Error{Code: apperr.RateLimited, Message: msg, Limit: LimitOrganization,
				Extensions: map[string]any{"limit": LimitOrganization, "max": l.Slots()}}
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{present(ctx, e)}})
		}
		var once sync.Once
		h := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			defer once.Do(release)
			return h(ctx)
		}
	}
}

// refusedByOrganization: resp is fairShare's refusal (nothing ran).
func refusedByOrganization(resp *graphql.Response) bool {
	return resp != nil && resp.Data == nil && len(resp.Errors) == 1 &&
		resp.Errors[0].Extensions["code"] == string(apperr.RateLimited) && resp.Errors[0].Extensions["limit"] == LimitOrganization
}

// memberOrgs keeps the organizations of ids the viewer is a member of, as
// limiter keys; none without a viewer or loaders.
func memberOrgs(ctx context.Context, ids []uuid.UUID) []string {
	v, ok := auth.ViewerFrom(ctx)
	l := loader.FromOK(ctx)
	if len(ids) == 0 || !ok || l == nil {
		return nil
	}
	mkeys := make([]org.MemberKey, len(ids))
	for i, id := range ids {
		mkeys[i] = org.MemberKey{Org: id, User: v.UserID}
	}
	if len(mkeys) > 1 {
		l.Membership.Prefetch(ctx, mkeys) // one statement for them all
	}
	var keys []string
	for _, k := range mkeys {
		if m, err := l.Membership.Now(ctx, k); err == nil && m != nil {
			keys = append(keys, k.Org.String())
		}
	}
	return keys
}

// OrgIDs lists the distinct organizations that op's root fields name by their
// orgId argument, with vars, in order of appearance (eachRootField); values
// that are not UUIDs are left out (the field refuses them). It runs after
// validation.
func OrgIDs(doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any) []uuid.UUID {
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	eachRootField(doc, op, func(f *ast.Field) {
		if f.Definition == nil || f.Definition.Arguments.ForName("orgId") == nil {
			return
		}
		raw, _ := f.ArgumentMap(vars)["orgId"].(string)
		if id, err := uuid.Parse(raw); err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	})
	return ids
}
