// Package tracing builds the process's OpenTelemetry tracer provider from the
// standard OTEL_* environment and starts the span of each HTTP request. It is
// off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set: then Setup returns no provider, and the server installs nothing, so
// that tracing off costs nothing per request (docs/operations.md, "Tracing").
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"tenantgraph/internal/platform/httpx"
)

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) names another.
const DefaultServiceName = "tenantgraph"

// Scope is the instrumentation scope of the request spans.
const Scope = "tenantgraph/internal/platform/tracing"

// Tracing is what Setup built: the provider (nil when tracing is off), the
// propagator that reads a request's traceparent (nil: none is read), and
// Shutdown, which flushes the spans not yet exported.
type Tracing struct {
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	Shutdown   func(context.Context) error
}

// Enabled reports whether the environment turns tracing on: an OTLP endpoint
// is set and OTEL_SDK_DISABLED is not "true".
func Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup builds the tracer provider from the environment: OTLP over HTTP
// (otlptracehttp reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE), the batch span processor (OTEL_BSP_*),
// the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; default
// parentbased_always_on), the resource (OTEL_SERVICE_NAME, default
// DefaultServiceName; OTEL_RESOURCE_ATTRIBUTES) and the propagator
// (OTEL_PROPAGATORS: "tracecontext", the default, or "none"). Off, it returns a
// Tracing with no provider and a Shutdown that does nothing. Exporter errors
// (a collector out of reach) go to log, at most as often as the SDK reports them.
func Setup(ctx context.Context, log *slog.Logger) (Tracing, error) {
	off := Tracing{Shutdown: func(context.Context) error { return nil }}
	if !Enabled() {
		return off, nil
	}
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" && p != "http/protobuf" {
		return off, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=%q: only http/protobuf is supported", p)
	}
	if p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
		return off, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported", p)
	}
	prop, err := propagator(os.Getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return off, err
	}
	res, err := Resource(ctx)
	if err != nil {
		return off, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return off, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return Tracing{Provider: tp, Propagator: prop, Shutdown: tp.Shutdown}, nil
}

// Resource is the process's resource: service.name DefaultServiceName, then
// what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say, which win.
func Resource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

func propagator(v string) (propagation.TextMapPropagator, error) {
	switch strings.TrimSpace(v) {
	case "", "tracecontext":
		return propagation.TraceContext{}, nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: want tracecontext or none", v)
}

// Handler starts the span of each request to next (but the health probes,
// which the access log leaves out too): a server span named after the method
// until the GraphQL layer renames it after its operation, continuing the trace
// of the request's traceparent when prop is set. The span records the status,
// the request id (the X-Request-Id that httpx.Edge answers with: put Handler
// outside it) and ends when next returns.
func Handler(tp trace.TracerProvider, prop propagation.TextMapPropagator, next http.Handler) http.Handler {
	tracer := tp.Tracer(Scope)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if prop != nil {
			ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		sw := &httpx.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.Status()
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status),
			attribute.String("request.id", w.Header().Get("X-Request-Id")))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}
