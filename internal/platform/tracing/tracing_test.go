package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"tenantgraph/internal/platform/tracing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clearEnv unsets what Setup reads, for the test's duration.
func clearEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_PROPAGATORS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// TestSetup: off without an endpoint (or with OTEL_SDK_DISABLED=true), on with
// one, traceparent read unless OTEL_PROPAGATORS=none, and what the server
// cannot honour (a gRPC protocol, another propagator) refused at start.
func TestSetup(t *testing.T) {
	for _, c := range []struct {
		name       string
		env        map[string]string
		on, parent bool
		err        string
	}{
		{name: "no endpoint: off"},
		{name: "endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true, parent: true},
		{name: "traces endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true, parent: true},
		{name: "disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "no propagation", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_PROPAGATORS": "none"}, on: true},
		{name: "grpc refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, err: "only http/protobuf"},
		{name: "b3 refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_PROPAGATORS": "b3"}, err: "want tracecontext or none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			tr, err := tracing.Setup(context.Background(), quiet)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tr.Provider != nil) != c.on || (tr.Propagator != nil) != c.parent {
				t.Errorf("provider %v, propagator %v: want on %v, traceparent %v", tr.Provider, tr.Propagator, c.on, c.parent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil { // nothing to flush: no collector needed
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

// TestResourceServiceName: service.name is tenantgraph unless OTEL_SERVICE_NAME says otherwise.
func TestResourceServiceName(t *testing.T) {
	for env, want := range map[string]string{"": "tenantgraph", "crm-eu": "crm-eu"} {
		clearEnv(t)
		t.Setenv("OTEL_SERVICE_NAME", env)
		res, err := tracing.Resource(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, a := range res.Attributes() {
			if a.Key == "service.name" {
				got = a.Value.AsString()
			}
		}
		if got != want {
			t.Errorf("OTEL_SERVICE_NAME=%q: service.name %q, want %q", env, got, want)
		}
	}
}
