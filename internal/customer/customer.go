// Package customer owns the organization's customers (CRM) and the notes on
// their timelines: the first business area inside a tenant, and the shape the
// later ones copy (tenant-keyed rows, the tenant gate, audited changes,
// keyset lists, optimistic concurrency).
package customer

import (
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/page"
)

// Limits of the input rules (docs/api.md, "Customers"); the migration's CHECKs mirror them.
const (
	MaxNameLen    = 200
	MaxCompanyLen = 200
	MaxTags       = 20
	MaxTagLen     = 32
	MaxNoteLen    = 10_000
	MaxImportRows = 1_000
	MaxSearchLen  = 100
)

// CustomerStatus is where a customer stands.
type CustomerStatus string

const (
	StatusLead     CustomerStatus = "LEAD"
	StatusActive   CustomerStatus = "ACTIVE"
	StatusInactive CustomerStatus = "INACTIVE"
)

// CustomerOrderField is what a customer list is ordered by (then by id).
type CustomerOrderField string

const (
	OrderByName      CustomerOrderField = "NAME"
	OrderByCreatedAt CustomerOrderField = "CREATED_AT"
	OrderByUpdatedAt CustomerOrderField = "UPDATED_AT"
)

// CustomerOrder is a list's ordering; the zero value is NAME ASC.
type CustomerOrder struct {
	Field     CustomerOrderField
	Direction page.OrderDirection
}

// Customer is a person or company an organization does business with.
type Customer struct {
	OrganizationID uuid.UUID      `db:"organization_id"`
	ID             uuid.UUID      `db:"id"`
	Name           string         `db:"name"`
	Email          *string        `db:"email"`
	Phone          *string        `db:"phone"`
	Company        *string        `db:"company"`
	Tags           []string       `db:"-"`
	Status         CustomerStatus `db:"status"`
	AssigneeID     *uuid.UUID     `db:"assignee_id"`
	CreatedByID    *uuid.UUID     `db:"created_by"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
	ArchivedAt     *time.Time     `db:"archived_at"`
	Version        int            `db:"version"`
}

// RowVersion is the customer's version, for expectedVersion (tenant.LockVersioned).
func (c *Customer) RowVersion() int { return c.Version }

// CustomerNote is an entry of a customer's timeline.
type CustomerNote struct {
	OrganizationID uuid.UUID  `db:"organization_id"`
	ID             uuid.UUID  `db:"id"`
	CustomerID     uuid.UUID  `db:"customer_id"`
	AuthorID       *uuid.UUID `db:"author_id"`
	// Author is read with the note (null once the account is gone), so
	// that a timeline's notes need no lookup each: nothing in them waits.
	Author    *auth.User `db:"-"`
	Body      string     `db:"body"`
	CreatedAt time.Time  `db:"created_at"`
	UpdatedAt time.Time  `db:"updated_at"`
}

// CreateCustomerInput is the creation form (also one row of an import). Its
// json names are the columns of customers it fills (Store.InsertMany).
type CreateCustomerInput struct {
	Name       string          `json:"name"`
	Email      *string         `json:"email"`
	Phone      *string         `json:"phone"`
	Company    *string         `json:"company"`
	Tags       []string        `json:"tags"`
	Status     *CustomerStatus `json:"status"`
	AssigneeID *uuid.UUID      `json:"assignee_id"`
}

// Patch changes the given fields of a customer only.
type Patch struct {
	Name     *string
	Email    page.Opt[string]
	Phone    page.Opt[string]
	Company  page.Opt[string]
	Tags     *[]string
	Status   *CustomerStatus
	Assignee page.Opt[uuid.UUID]
}

// Filter narrows a customer list.
type Filter struct {
	Search          *string
	Status          *CustomerStatus
	Tag             *string
	AssigneeID      *uuid.UUID
	IncludeArchived bool
	Order           CustomerOrder
}

// Key identifies a customer.
type Key struct {
	Org      uuid.UUID
	Customer uuid.UUID
}

// NotesPageKey asks for the first page of a customer's notes.
type NotesPageKey struct {
	Key
	First int
}

// Connections of the area's lists, built by the one connection builder.
type (
	CustomerConnection     = page.Connection[*Customer]
	CustomerEdge           = page.Edge[*Customer]
	CustomerNoteConnection = page.Connection[*CustomerNote]
	CustomerNoteEdge       = page.Edge[*CustomerNote]
)
