// Package org owns organizations (tenants), their members and roles,
// invitations and ownership transfer.
package org

import (
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/tenant"
)

// Role is a member's role (the kit's: every area gates on it). OWNER > ADMIN > MEMBER.
type Role = tenant.Role

const (
	RoleOwner  = tenant.RoleOwner
	RoleAdmin  = tenant.RoleAdmin
	RoleMember = tenant.RoleMember
)

// InvitationStatus is where an invitation stands.
type InvitationStatus string

const (
	InvitationPending  InvitationStatus = "PENDING"
	InvitationAccepted InvitationStatus = "ACCEPTED"
	InvitationRevoked  InvitationStatus = "REVOKED"
	InvitationExpired  InvitationStatus = "EXPIRED"
	InvitationDeclined InvitationStatus = "DECLINED"
)

// Organization is a tenant (the kit's type: the gate locks and returns it).
type Organization = tenant.Organization

// Member is a user's membership in an organization.
type Member struct {
	OrganizationID uuid.UUID `db:"organization_id"`
	UserID         uuid.UUID `db:"user_id"`
	Role           Role      `db:"role"`
	JoinedAt       time.Time `db:"created_at"`
	// User is the member's user when the membership was read with it (member
	// pages, owners) or given it (the graph's mutation results); GraphQL's
	// Member.user reads it as a plain field: no resolver, no goroutine per member.
	User *auth.User `db:"-"`
}

// Invitation is an emailed offer to join an organization.
type Invitation struct {
	ID             uuid.UUID        `db:"id"`
	OrganizationID uuid.UUID        `db:"organization_id"`
	Email          string           `db:"email"`
	Role           Role             `db:"role"`
	Status         InvitationStatus `db:"status"`
	InvitedByID    *uuid.UUID       `db:"invited_by"`
	ExpiresAt      time.Time        `db:"expires_at"`
	CreatedAt      time.Time        `db:"created_at"`
}

// CreateOrganizationInput is the creation form.
type CreateOrganizationInput struct {
	Name string
	Slug *string
	// Currency is an ISO 4217 code (default USD); TimeZone an IANA name (default UTC).
	Currency *string
	TimeZone *string
}

// UpdateOrganizationInput changes the given fields only.
type UpdateOrganizationInput struct {
	Name *string
	Slug *string
}

// Connections of the area's lists, built by the one connection builder.
type (
	OrganizationConnection = page.Connection[*Organization]
	OrganizationEdge       = page.Edge[*Organization]
	MemberConnection       = page.Connection[*Member]
	MemberEdge             = page.Edge[*Member]
	InvitationConnection   = page.Connection[*Invitation]
	InvitationEdge         = page.Edge[*Invitation]
)

// MemberKey identifies a membership.
type MemberKey struct {
	Org  uuid.UUID
	User uuid.UUID
}

// MemberCountKey asks for the number of an organization's members with a role.
type MemberCountKey struct {
	Org  uuid.UUID
	Role Role // "" for every role
}

// MembersPageKey asks for the first page of an organization's members.
type MembersPageKey struct {
	Org   uuid.UUID
	First int
	Role  Role // "" for every role
}
