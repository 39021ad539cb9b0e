package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"tenantgraph/graph"
	"tenantgraph/internal/account"
	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

// BenchmarkEventDelivery measures what one event costs the server per
// subscriber: 200 sockets of one organization's members, each with one
// organizationEvents subscription (the subject with its fields, the actor),
// and per iteration one customer created over HTTP and its event read on every
// socket. The figure that counts is the server's CPU per delivery (ns/op is
// per iteration, that is per 200 deliveries, and includes the mutation and the
// client's reading); run it with -cpuprofile to see where it goes. The load
// test's subscriptions scenario (docs/testing.md "Load test") measures the
// latency and memory goals.
func BenchmarkEventDelivery(b *testing.B) {
	const sockets = 200
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Argon2: FastArgon2, RateLimits: &account.Limits{},
		SocketLimits: &graph.SocketLimits{PerSocket: 10, PerUser: sockets, Total: sockets, SocketsPerUser: sockets, Sockets: sockets}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Hub.Run(ctx)
	go a.Sealer.Run(ctx)
	go a.Feed.Run(ctx)
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	api := &Server{URL: hs.URL}
	owner := srv.RegisterVerified(b, "ws-bench")
	org := srv.CreateOrg(b, owner, "Delivery")
	after := eventsCursor(b, srv, owner.AccessToken, org)
	ws := make([]*WS, sockets)
	for i := range ws {
		ws[i] = api.MustDialWS(b, owner.AccessToken)
		ws[i].Subscribe(b, "1", eventsSub, map[string]any{"org": org, "after": after, "types": []string{"customer.created"}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n++
		createCustomer(b, api, owner.AccessToken, org, fmt.Sprint("Customer ", n))
		for _, w := range ws {
			if m, err := w.Next(5 * time.Second); err != nil || m.Type != "next" {
				b.Fatalf("%+v %v", m, err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*sockets), "ns/delivery")
}
