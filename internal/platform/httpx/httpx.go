// Package httpx is the HTTP edge without business rules: request ids, access
// logs, panic recovery and body limits. What it learns of a request reaches the
// layers below through reqmeta, never through this package.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/reqmeta"
)

var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

func newID() string {
	b := make([]byte, 12)
	rand.Read(b) //nolint:errcheck
	return hex.EncodeToString(b)
}

// StatusWriter notes the status and the size of the response written through
// it (the access log, the metrics and the request's span read them). Status
// is 0 until something is written.
type StatusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

// Status is the response's status so far: 0 before anything was written.
func (w *StatusWriter) Status() int { return w.status }

// Bytes is how many body bytes were written.
func (w *StatusWriter) Bytes() int { return w.bytes }

func (w *StatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Edge wraps next with the request id (X-Request-Id, echoed back), the access log
// (with the trace_id of the request's span when one records: see tracing.Handler),
// panic recovery and X-Content-Type-Options: nosniff on every response. The client IP is the connection's address, unless that is a
// trusted proxy: then it is the right-most X-Forwarded-For address that is not one.
func Edge(log *slog.Logger, trustedProxies []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validID.MatchString(id) {
			id = newID()
		}
		ri := &reqmeta.Meta{ID: id, IP: ClientIP(r, trustedProxies), UserAgent: truncate(r.UserAgent(), 512)}
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &StatusWriter{ResponseWriter: w}
		ctx := reqmeta.With(r.Context(), ri)
		statements := db.CounterFrom(ctx)
		if statements == nil {
			statements = &db.Counter{}
			ctx = db.WithCounter(ctx, statements)
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(ctx, "panic", "request_id", id, "panic", p)
				if sw.status == 0 {
					http.Error(sw, `{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR","requestId":"`+id+`"}}]}`, http.StatusInternalServerError)
				}
			}
			if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
				return
			}
			status := sw.status
			if r.Context().Err() != nil {
				// The client went away before the answer was written: its own status,
				// not the one of an answer nobody read.
				status = StatusClientClosedRequest
			}
			args := []any{"request_id", id, "method", r.Method, "path", r.URL.Path, "operation", ri.Operation(),
				"status", status, "bytes", sw.bytes, "sql_statements", statements.Load(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				args = append(args, "trace_id", span.SpanContext().TraceID().String())
			}
			// A statement cut by the statement timeout (TIMEOUT): the same line at
			// WARN, with how many (docs/operations.md, "Statement timeout").
			if n := ri.StatementTimeouts(); n > 0 {
				log.WarnContext(ctx, "request", append(args, "statement_timeouts", n)...)
				return
			}
			log.InfoContext(ctx, "request", args...)
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// StatusClientClosedRequest is the access log's status of a request whose
// client went away before its answer (nginx's 499).
const StatusClientClosedRequest = 499

// Detach runs next with a context that the client's going away does not
// cancel, bounded by timeout instead. A request whose client disconnects
// finishes its work as if it had stayed: cancelling a lib/pq statement closes
// its connection (a burst of disconnects would empty the pool), and work cut
// off halfway would surface as internal errors. The access log still records
// the disconnect (StatusClientClosedRequest).
func Detach(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// ClientIP is the address of the client behind any trusted proxies.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if !inAny(addr, trusted) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: trust nothing left of it
		}
		addr = hop.Unmap()
		if !inAny(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// NoStore marks every response of next Cache-Control: no-store: they may carry tokens
// and private data, which no browser or proxy cache should keep.
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// LimitBody caps request bodies at n bytes: a declared length over it is refused
// at once with 413; a longer body without one fails when it is read.
func LimitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			reqmeta.From(r.Context()).SetOutcome("BAD_USER_INPUT")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"errors":[{"message":"request body too large (limit %d bytes)","extensions":{"code":"BAD_USER_INPUT"}}]}`, n)
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		next.ServeHTTP(w, r)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
