package apitest

import (
	"testing"

	"github.com/google/uuid"
)

// Account operations that the tests of several packages send.
const (
	MeQuery                = `{ me { id email name emailVerified createdAt } }`
	LoginMutation          = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken accessTokenExpiresAt user { id email emailVerified } } }`
	RefreshMutation        = `mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken user { id } } }`
	LogoutMutation         = `mutation($t: String!) { logout(refreshToken: $t) }`
	RequestResetMutation   = `mutation($e: String!) { requestPasswordReset(email: $e) }`
	ResetMutation          = `mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }`
	ChangePasswordMutation = `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`
	RegisterMutation       = `mutation($in: RegisterInput!) { register(input: $in) { user { id } } }`
)

// Tokens are an access token and its refresh token.
type Tokens struct{ Access, Refresh string }

// Login signs in with email and password, failing the test on errors.
func (s *Server) Login(t testing.TB, email, pw string) Tokens {
	t.Helper()
	r := MustOK(t, s.Post(t, "", LoginMutation, map[string]any{"e": email, "p": pw}))
	var out struct {
		Login struct{ AccessToken, RefreshToken string }
	}
	r.Decode(t, &out)
	return Tokens{out.Login.AccessToken, out.Login.RefreshToken}
}

// Refresh exchanges a refresh token; the tokens are empty when r has errors.
func (s *Server) Refresh(t testing.TB, tok string) (Tokens, Response) {
	t.Helper()
	r := s.Post(t, "", RefreshMutation, map[string]any{"t": tok})
	var out struct {
		RefreshToken struct{ AccessToken, RefreshToken string }
	}
	if r.Code() == "" {
		r.Decode(t, &out)
	}
	return Tokens{out.RefreshToken.AccessToken, out.RefreshToken.RefreshToken}, r
}

// WantCode fails the test unless r's first error has extensions.code code.
func WantCode(t testing.TB, r Response, code string) {
	t.Helper()
	if r.Code() != code {
		t.Fatalf("want %s, got %s", code, r.Raw)
	}
}

// MeData is MeQuery's answer.
type MeData struct {
	Me *struct {
		ID            uuid.UUID
		Email         string
		EmailVerified bool
	}
}
