// Package account owns users and their credentials: sign-up, login, sessions
// (rotating refresh tokens), email verification and password reset.
package account

import (
	"time"

	"tenantgraph/internal/auth"
)

// User is a person with a login (auth.User: the identity every area may show).
type User = auth.User

// AuthPayload is what a successful sign-in returns.
type AuthPayload struct {
	AccessToken          string
	AccessTokenExpiresAt time.Time
	RefreshToken         string
	User                 *User
}

// RegisterInput is the sign-up form.
type RegisterInput struct {
	Email    string
	Password string
	Name     string
}

// Token purposes for single-use emailed tokens.
const (
	PurposeVerifyEmail   = "verify_email"
	PurposeResetPassword = "reset_password"
)
