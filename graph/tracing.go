package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TraceScope is the instrumentation scope of the root field spans.
const TraceScope = "tenantgraph/graph"

// tracing names the request's span (tracing.Handler's) after the operation
// ("mutation CreateCustomer"; anonymous: "mutation"), records its name, type
// and outcome code (the first error's extensions.code, or OK), and starts a
// child span for each root field but introspection: every one of ours reads or
// writes PostgreSQL through a service, and its span holds the SQL statement
// spans of its resolver, of the directives' checks, of the tenant gate's
// transaction and of the loaders its fields call. Nested fields get no span of
// their own (a field middleware costs on every field of the response: see
// clearLoadersAfterMutations); a loader's batch runs in the context of its
// first Load, so its statements hang under that field's root field. Installed
// only when tracing is on (HandlerOptions.Tracer).
type tracing struct{ tracer trace.Tracer }

var (
	_ graphql.HandlerExtension     = tracing{}
	_ graphql.OperationInterceptor = tracing{}
	_ graphql.ResponseInterceptor  = tracing{}
	_ graphql.RootFieldInterceptor = tracing{}
)

func (tracing) ExtensionName() string                          { return "Tracing" }
func (tracing) Validate(schema graphql.ExecutableSchema) error { return nil }

func (tracing) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	span := trace.SpanFromContext(ctx)
	if oc := graphql.GetOperationContext(ctx); span.IsRecording() && oc != nil && oc.Operation != nil {
		typ := string(oc.Operation.Operation)
		name := typ
		if oc.Operation.Name != "" {
			name += " " + oc.Operation.Name
		}
		span.SetName(name)
		span.SetAttributes(attribute.String("graphql.operation.type", typ),
			attribute.String("graphql.operation.name", oc.Operation.Name))
	}
	return next(ctx)
}

func (tracing) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if span := trace.SpanFromContext(ctx); span.IsRecording() && resp != nil {
		code := "OK"
		if len(resp.Errors) > 0 {
			code = "ERROR"
			if c, ok := resp.Errors[0].Extensions["code"].(string); ok {
				code = c
			}
		}
		span.SetAttributes(attribute.String("graphql.outcome.code", code))
		if code == "INTERNAL_SERVER_ERROR" {
			span.SetStatus(codes.Error, code)
		}
	}
	return resp
}

func (t tracing) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	fc := graphql.GetRootFieldContext(ctx)
	if fc == nil || strings.HasPrefix(fc.Field.Name, "__") || !trace.SpanFromContext(ctx).IsRecording() {
		return next(ctx)
	}
	typ := "Query"
	if d := fc.Field.ObjectDefinition; d != nil {
		typ = d.Name
	}
	ctx, span := t.tracer.Start(ctx, typ+"."+fc.Field.Name,
		trace.WithAttributes(attribute.String("graphql.field.name", fc.Field.Name)))
	defer span.End()
	return next(ctx)
}
