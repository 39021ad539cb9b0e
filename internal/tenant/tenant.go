// Package tenant is the area kit: what every business area inside an
// organization is assembled from, so that an area is a page of rules.
//
//   - Gate.Run and Do: the one tenant gate. A transaction that re-checks the
//     actor's membership and role under a lock chosen per use, retried on a
//     serialization failure or a deadlock, with the audit entry, the locked
//     row and the version check at hand (Tx).
//   - Once: idempotency keys for mutations that take idempotencyKey.
//   - Constraints and Diff: constraint violations mapped to documented codes
//     with the field named, and the before/after of an audited change.
//
// It knows the tenancy tables it guards (organizations, organization_members,
// idempotency_keys) and no area: areas import it, never each other.
package tenant

import (
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
)

// Role is a member's role. OWNER > ADMIN > MEMBER.
type Role string

const (
	RoleOwner  Role = "OWNER"
	RoleAdmin  Role = "ADMIN"
	RoleMember Role = "MEMBER"
)

// Rank orders roles; an unknown role ranks 0.
func (r Role) Rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// AtLeast reports whether r is want or above.
func (r Role) AtLeast(want Role) bool { return r.Rank() >= want.Rank() && r.Rank() > 0 }

// Organization is a tenant.
type Organization struct {
	ID        uuid.UUID `db:"id"`
	Name      string    `db:"name"`
	Slug      string    `db:"slug"`
	CreatedAt time.Time `db:"created_at"`
	// Currency is an ISO 4217 code: the organization's prices and orders are in it.
	Currency string `db:"currency"`
	// TimeZone is an IANA name: the organization's sales are counted by day in it.
	TimeZone string `db:"time_zone"`
}

// Membership is a user's membership of an organization, as the gate reads it.
type Membership struct {
	OrganizationID uuid.UUID `db:"organization_id"`
	UserID         uuid.UUID `db:"user_id"`
	Role           Role      `db:"role"`
	JoinedAt       time.Time `db:"created_at"`
}

// ErrOrgNotFound is the answer for an organization the actor is not a member
// of, whether it exists or not.
var ErrOrgNotFound = apperr.New(apperr.NotFound, "organization not found")

// CheckRole is the role gate shared by the @hasRole directive and the gate:
// no membership (have "") is NOT_FOUND, without revealing whether the
// organization exists; a lower role is FORBIDDEN.
func CheckRole(have, want Role) error {
	if have == "" {
		return ErrOrgNotFound
	}
	if !have.AtLeast(want) {
		return apperr.New(apperr.Forbidden, "this needs the %s role", want)
	}
	return nil
}

// Entry is one audit event as an area records it (the audit area stores it).
type Entry struct {
	OrganizationID uuid.UUID
	ActorID        uuid.UUID
	Action         string
	TargetType     string
	TargetID       string
	Metadata       map[string]any
	At             time.Time
}
