package auth

import (
	"net/http"
	"strings"
)

// Middleware reads `Authorization: Bearer <access token>`. No header means an
// anonymous request; a bad, expired or wrong-type token also leaves the request
// without a viewer, so fields that need one answer UNAUTHENTICATED (never a 500)
// while public fields still work.
func Middleware(t *Tokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if v, err := t.Verify(strings.TrimSpace(tok)); err == nil {
				r = r.WithContext(WithViewer(r.Context(), v))
			}
		}
		next.ServeHTTP(w, r)
	})
}
