package graph

import (
	"context"
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/trace"

	"tenantgraph/internal/loader"
	"tenantgraph/internal/platform/fairshare"
	"tenantgraph/internal/platform/reqmeta"
)

// ParserTokenLimit caps the tokens of one query document (GRAPHQL_PARSE_FAILED above it).
const ParserTokenLimit = 15_000

// HandlerOptions configure the GraphQL handler.
type HandlerOptions struct {
	Production bool // no introspection, no field suggestions
	Log        *slog.Logger
	Limits     *Limits // nil: DefaultLimits
	// TrustedDocuments, when not nil, are the only documents the handler runs
	// (lower-case hex sha256 -> text; see trustedDocuments); automatic persisted
	// queries are then off.
	TrustedDocuments map[string]string
	// Tracer, when set, names the request's span after the operation and spans
	// each root field (see tracing); nil: nothing is installed.
	Tracer trace.Tracer
	// Socket, when set, serves subscriptions over graphql-transport-ws (an
	// Upgrade request to the endpoint); nil: subscriptions are refused.
	Socket *SocketOptions
	// Organizations, when set, caps the queries and mutations of one
	// organization served at once (fairShare); nil: no cap.
	Organizations *fairshare.Limiter
}

// NewHandler builds the GraphQL HTTP handler with explicit transports and extensions.
func NewHandler(r *Resolver, o HandlerOptions) *handler.Server {
	limits := DefaultLimits
	if o.Limits != nil {
		limits = *o.Limits
	}
	srv := handler.New(pricedSchema{NewExecutableSchema(Config{Resolvers: r, Directives: Directives()})})
	r.present = ErrorPresenter(o.Log)
	r.sockets = newSockets(SocketOptions{})
	if o.Socket != nil {
		r.sockets = newSockets(*o.Socket)
		srv.AddTransport(r.sockets.transport())
	}
	srv.AddTransport(transport.Options{})
	trusted := o.TrustedDocuments != nil
	srv.AddTransport(compliant{Transport: transport.GET{}, documentIDs: trusted})
	srv.AddTransport(compliant{Transport: transport.POST{}, documentIDs: trusted})
	srv.AddTransport(unsupported{}) // last: everything the others refuse
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(ParserTokenLimit)
	if trusted {
		srv.Use(trustedDocuments{docs: o.TrustedDocuments})
	} else {
		srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	}
	// Bad bytes first: no string that PostgreSQL cannot store reaches a resolver;
	// nor an enum value in a variable that only matches in another case.
	srv.Use(inputBytes{})
	srv.Use(&exactEnums{})
	// Then the shape: it is linear in the document; the complexity walk inlines fragments.
	srv.Use(shapeLimits{depth: limits.Depth, aliases: limits.Aliases, credentialOps: limits.CredentialOps,
		mutations: limits.Mutations, bulkRows: limits.BulkRows, introspection: !o.Production})
	srv.Use(extension.FixedComplexityLimit(limits.Complexity))
	if o.Production {
		srv.SetDisableSuggestion(true)
	} else {
		srv.Use(extension.Introspection{})
	}
	if o.Tracer != nil {
		srv.Use(tracing{o.Tracer})
	}
	srv.SetErrorPresenter(ErrorPresenter(o.Log))
	srv.SetRecoverFunc(Recover(o.Log))
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if oc := graphql.GetOperationContext(ctx); oc != nil {
			var err error
			if ctx, err = r.sockets.operation(ctx, oc.Operation); err != nil {
				return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{r.present(ctx, err)}})
			}
			name := oc.OperationName
			if name == "" && oc.Operation != nil {
				name = oc.Operation.Name
				if name == "" {
					name = string(oc.Operation.Operation) // anonymous: "query" or "mutation"
				}
			}
			reqmeta.From(ctx).SetOperation(name)
			if oc.Operation != nil {
				reqmeta.From(ctx).SetOperationType(string(oc.Operation.Operation), oc.Operation.Name)
			}
			if oc.Operation != nil && oc.Operation.Operation == ast.Mutation {
				oc.ResolverMiddleware = clearLoadersAfterMutations(oc.ResolverMiddleware)
			}
		}
		return next(ctx)
	})
	if o.Organizations != nil {
		// After the names are recorded: a refusal is counted under its operation.
		srv.AroundOperations(fairShare(o.Organizations, r.present))
	}
	if o.Socket != nil {
		srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
			return next(r.sockets.response(ctx))
		})
	}
	return srv
}

// clearLoadersAfterMutations wraps a mutation's field middleware: once a
// mutation field's resolver returns, the request's loaders forget what they
// cached (the @hasRole check's membership, earlier fields' reads), so that its
// result shows its own change. Queries run without it: a field middleware
// costs a closure on every field of the response.
func clearLoadersAfterMutations(next graphql.FieldMiddleware) graphql.FieldMiddleware {
	return func(ctx context.Context, resolve graphql.Resolver) (any, error) {
		res, err := next(ctx, resolve)
		if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Object == "Mutation" {
			if l := loader.FromOK(ctx); l != nil {
				l.ClearAll()
			}
		}
		return res, err
	}
}
