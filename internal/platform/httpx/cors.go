package httpx

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/cors"
)

// CORSOptions say which browser origins may call the API (configuration:
// CORS_ALLOWED_ORIGINS, and the development default).
type CORSOptions struct {
	// Origins are allowed as listed (scheme, host and port exactly).
	Origins []string
	// AnyLocalPort also allows http://localhost and http://127.0.0.1 on any
	// port: a front end's development server (Vite's 5173, 3000, ...).
	AnyLocalPort bool
}

// Allows reports whether a page of origin may call the API.
func (o CORSOptions) Allows(origin string) bool {
	return slices.ContainsFunc(o.Origins, func(s string) bool { return strings.EqualFold(s, origin) }) ||
		(o.AnyLocalPort && LocalDevOrigin(origin))
}

// Enabled reports whether any origin is allowed.
func (o CORSOptions) Enabled() bool { return len(o.Origins) > 0 || o.AnyLocalPort }

// CORS answers preflights and adds the CORS headers for the allowed origins;
// with none allowed it returns next unchanged (no CORS headers at all).
func CORS(o CORSOptions, next http.Handler) http.Handler {
	if !o.Enabled() {
		return next
	}
	c := cors.New(cors.Options{
		AllowOriginFunc: o.Allows,
		AllowedMethods:  []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders:  []string{"Authorization", "Content-Type", "X-Request-Id", "Apollo-Require-Preflight"},
		ExposedHeaders:  []string{"X-Request-Id"},
		MaxAge:          600,
	})
	h := c.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			r = normalizeRequestHeaders(r)
		}
		h.ServeHTTP(w, r)
	})
}

// LocalDevOrigin reports whether origin is http://localhost or http://127.0.0.1,
// with or without a port (1-65535): the scheme and the host must be exactly
// these, so http://localhost.evil.com, http://localhost@evil.com and
// https://localhost:5173 are not.
func LocalDevOrigin(origin string) bool {
	rest, ok := strings.CutPrefix(origin, "http://")
	if !ok {
		return false
	}
	host, port, hasPort := strings.Cut(rest, ":")
	if host != "localhost" && host != "127.0.0.1" {
		return false
	}
	if !hasPort {
		return true
	}
	if port == "" || len(port) > 5 || port[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == port
}

// maxRequestHeaders bounds the Access-Control-Request-Headers value rewritten
// (a longer one is left as it is, and refused unless it is already in order).
const maxRequestHeaders = 1024

// normalizeRequestHeaders rewrites Access-Control-Request-Headers into the
// form browsers send (lower case, sorted, no repeats), which rs/cors requires:
// "Content-Type, Authorization" from a hand-written client or a proxy is then
// answered like "authorization,content-type". It returns a copy of r
// (r.Clone) when it rewrites the header.
func normalizeRequestHeaders(r *http.Request) *http.Request {
	vals, ok := r.Header["Access-Control-Request-Headers"]
	if !ok {
		return r
	}
	joined := strings.Join(vals, ",")
	if len(joined) > maxRequestHeaders {
		return r
	}
	var names []string
	for _, n := range strings.Split(joined, ",") {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	r = r.Clone(r.Context())
	r.Header["Access-Control-Request-Headers"] = []string{strings.Join(slices.Compact(names), ",")}
	return r
}
