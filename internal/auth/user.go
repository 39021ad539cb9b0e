package auth

import (
	"time"

	"github.com/google/uuid"
)

// User is a person with a login, as every area may show them (a member, an
// assignee, an author). The account area owns the rows and the credentials;
// the password hash never leaves its store.
type User struct {
	ID              uuid.UUID  `db:"id"`
	Email           string     `db:"email"`
	Name            string     `db:"name"`
	EmailVerifiedAt *time.Time `db:"email_verified_at"`
	CreatedAt       time.Time  `db:"created_at"`
}

// EmailVerified reports whether the user has confirmed their email address.
func (u *User) EmailVerified() bool { return u.EmailVerifiedAt != nil }
