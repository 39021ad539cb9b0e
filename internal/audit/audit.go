// Package audit is the append-only log of changes to organizations. Events are
// written in the same transaction as the change they record; the table refuses
// UPDATE, DELETE and TRUNCATE.
package audit

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/tenant"
)

// Event is one audit log entry.
type Event struct {
	Seq            int64           `db:"seq"`
	ID             uuid.UUID       `db:"id"`
	OrganizationID uuid.UUID       `db:"organization_id"`
	ActorID        *uuid.UUID      `db:"actor_id"`
	Action         string          `db:"action"`
	TargetType     *string         `db:"target_type"`
	TargetID       *string         `db:"target_id"`
	Metadata       json.RawMessage `db:"metadata"`
	IP             *string         `db:"ip"`
	UserAgent      *string         `db:"user_agent"`
	CreatedAt      time.Time       `db:"created_at"`
}

// Entry is what a service records (the kit's: areas record through tenant.Tx.Audit).
type Entry = tenant.Entry

// Filter narrows a listing.
type Filter struct {
	Action  *string
	ActorID *uuid.UUID
}

// A page of events, newest first, built by the one connection builder.
type (
	Connection = page.Connection[*Event]
	Edge       = page.Edge[*Event]
)
