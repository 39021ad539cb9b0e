package app

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"

	"tenantgraph/graph"
	"tenantgraph/internal/org"
	"tenantgraph/internal/platform/httpx"
	"tenantgraph/internal/tenant"
)

// sockets sends websocket upgrades of the endpoint straight to gql (which
// authenticates them in connection_init), once their Origin is the server's
// own or one CORS allows; every other request goes to next. A page of another
// origin gets 403 before any websocket exists; past limit sockets at once,
// an upgrade gets 503.
func sockets(cors httpx.CORSOptions, limit int, gql, next http.Handler) http.Handler {
	var open atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(origin, r.Host) && !cors.Allows(origin) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errors":[{"message":"this origin may not open a websocket here (CORS_ALLOWED_ORIGINS)","extensions":{"code":"FORBIDDEN"}}]}`)) //nolint:errcheck
			return
		}
		// A websocket's ServeHTTP lasts as long as the socket.
		if n := open.Add(1); limit > 0 && n > int64(limit) {
			open.Add(-1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"errors":[{"message":"the server has its maximum of websockets: retry shortly","extensions":{"code":"RATE_LIMITED","limit":"server_sockets"}}]}`)) //nolint:errcheck
			return
		}
		defer open.Add(-1)
		gql.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether origin is the page of host itself (the explorer).
func sameOrigin(origin, host string) bool {
	return strings.EqualFold(origin, "http://"+host) || strings.EqualFold(origin, "https://"+host)
}

func socketLimits(l *graph.SocketLimits) graph.SocketLimits {
	if l != nil {
		return *l
	}
	return graph.DefaultSocketLimits
}

// memberRole reads a user's role in an organization for the event feed ("": none).
func memberRole(orgs *org.Service) func(ctx context.Context, orgID, user uuid.UUID) (tenant.Role, error) {
	return func(ctx context.Context, orgID, user uuid.UUID) (tenant.Role, error) {
		ms, err := orgs.Memberships(ctx, []org.MemberKey{{Org: orgID, User: user}})
		if err != nil || len(ms) == 0 {
			return "", err
		}
		return ms[0].Role, nil
	}
}
