// Package account owns users and their credentials: sign-up, login, sessions
// (rotating refresh tokens), email verification and password reset.
package account

import (
	"time"

	"github.com/google/uuid"
)

// User is a person with a login. The password hash never leaves the store.
type User struct {
	ID              uuid.UUID  `db:"id"`
	Email           string     `db:"email"`
	Name            string     `db:"name"`
	EmailVerifiedAt *time.Time `db:"email_verified_at"`
	CreatedAt       time.Time  `db:"created_at"`
}

// EmailVerified reports whether the user has confirmed their email address.
func (u *User) EmailVerified() bool { return u.EmailVerifiedAt != nil }

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
