package httpx

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"tenantgraph/internal/platform/ratelimit"
	"tenantgraph/internal/platform/reqmeta"
)

// AdmitLimits bound the requests a process serves, before any of their work
// starts: per client (a signed-in user, else a client address) and for the
// whole process. A zero field is no limit.
type AdmitLimits struct {
	// ClientRate is the requests per second one client may send, in bursts of
	// up to twice that; past it a request is refused with 429.
	ClientRate int
	// ClientConcurrent is the requests of one client served at once; one more
	// is refused with 429 at once, not queued.
	ClientConcurrent int
	// Concurrent is the requests the process serves at once; one more is
	// refused with 503 at once.
	Concurrent int
}

// The limits' names, in the refusal's extensions.limit and in the metrics.
const (
	LimitClientRate       = "client_rate"
	LimitClientConcurrent = "client_concurrent"
	LimitConcurrent       = "server_concurrent"
)

// Admit serves next only within l. client names the request's client (""
// when none can be told: only the process limit applies); now is the rate
// limit's clock. A refusal is a GraphQL error with extensions.code
// RATE_LIMITED and extensions.limit, with Retry-After: 1, and next never sees
// the request. The per-client counts are bounded: the rate limiter keeps at
// most ratelimit.MaxKeys clients, and the in-flight table only the clients
// with a request being served.
func Admit(l AdmitLimits, client func(*http.Request) string, now func() time.Time, next http.Handler) http.Handler {
	if l == (AdmitLimits{}) {
		return next
	}
	var rate *ratelimit.Limiter
	if l.ClientRate > 0 {
		rate = ratelimit.New(2*l.ClientRate, 2*time.Second)
	}
	var (
		mu       sync.Mutex
		total    int
		inFlight = map[string]int{}
	)
	// enter takes a slot for key; it reports the limit that refused it, if any.
	enter := func(key string) string {
		mu.Lock()
		defer mu.Unlock()
		if l.Concurrent > 0 && total >= l.Concurrent {
			return LimitConcurrent
		}
		if l.ClientConcurrent > 0 && key != "" && inFlight[key] >= l.ClientConcurrent {
			return LimitClientConcurrent
		}
		total++
		if key != "" {
			inFlight[key]++
		}
		return ""
	}
	leave := func(key string) {
		mu.Lock()
		defer mu.Unlock()
		total--
		if key == "" {
			return
		}
		if inFlight[key]--; inFlight[key] <= 0 {
			delete(inFlight, key)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := client(r)
		if !rate.Allow(key, now()) {
			refuse(w, r, http.StatusTooManyRequests, LimitClientRate,
				fmt.Sprintf("too many requests: at most %d per second from one client", l.ClientRate))
			return
		}
		switch limit := enter(key); limit {
		case LimitConcurrent:
			refuse(w, r, http.StatusServiceUnavailable, limit, "the server is busy: retry shortly")
			return
		case LimitClientConcurrent:
			refuse(w, r, http.StatusTooManyRequests, limit,
				fmt.Sprintf("too many requests at once: at most %d from one client", l.ClientConcurrent))
			return
		}
		defer leave(key)
		next.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, r *http.Request, status int, limit, message string) {
	m := reqmeta.From(r.Context())
	m.SetOutcome("RATE_LIMITED")
	m.RateLimited(limit)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"message":%q,"extensions":{"code":"RATE_LIMITED","limit":%q}}]}`, message, limit)
}
