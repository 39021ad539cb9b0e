package auth

import (
	"net/http"
	"strings"
)

// Middleware reads `Authorization: Bearer <access token>`. No header means an
// anonymous request; a bad, expired or wrong-type token also leaves the request
// without a viewer, so fields that need one answer UNAUTHENTICATED (never a 500)
// while public fields still work. So does a valid token of a session in revoked
// (ended by logout, logoutAll, a password change or reset); revoked may be nil.
func Middleware(t *Tokens, revoked *RevokedSessions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if v, err := t.Verify(strings.TrimSpace(tok)); err == nil && !revoked.Has(v.SessionID) {
				r = r.WithContext(WithViewer(r.Context(), v))
			}
		}
		next.ServeHTTP(w, r)
	})
}
