package tenant

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
)

// Rows is what the kit needs to edit an area's rows of type T: the same
// versioned update and archive/restore for every area (customers, products).
type Rows[T any] struct {
	// Kind names the row in messages and audit actions: "customer" gives
	// "customer.updated", "the customer is archived".
	Kind     string
	Lock     Finder[T]
	NotFound error
	// Save writes the row's editable fields, bumps its version and returns it.
	Save func(ctx context.Context, q sqlx.QueryerContext, row *T, now time.Time) (*T, error)
	// Snapshot is the row's editable fields as the audit log records them.
	Snapshot func(*T) map[string]any
	// ArchivedAt is where the row keeps its archival time.
	ArchivedAt func(*T) **time.Time
	// Constraints map what Save may violate.
	Constraints Constraints
}

// Update edits row id of the actor's organization in t: it locks the row
// (NOT_FOUND), checks expectedVersion (CONFLICT, see LockVersioned), refuses
// an archived row (CONFLICT), applies change to a copy and, when a snapshot
// field changed, saves it and audits "<kind>.updated" with the changed fields
// before and after. A change that changes nothing returns the row as it is:
// same version, no audit event.
func Update[T any, P interface {
	*T
	Versioned
}](ctx context.Context, t *Tx, r Rows[T], id uuid.UUID, expected *int, change func(*T)) (*T, error) {
	row, err := LockVersioned[T, P](ctx, t, r.Lock, id, r.NotFound, r.Kind, expected)
	if err != nil {
		return nil, err
	}
	if *r.ArchivedAt(row) != nil {
		return nil, apperr.New(apperr.Conflict, "the %s is archived: restore it first", r.Kind)
	}
	next := *row
	change(&next)
	before, after := Diff(r.Snapshot(row), r.Snapshot(&next))
	if len(after) == 0 {
		return row, nil
	}
	out, err := r.Save(ctx, t, &next, t.Now)
	if err != nil {
		return nil, r.Constraints.Map(err, "")
	}
	return out, t.Audit(ctx, r.Kind+".updated", r.Kind, id.String(), map[string]any{"before": before, "after": after})
}

// SetArchived archives (archive) or restores row id of the actor's
// organization in t: CONFLICT when it already is, else saved and audited as
// "<kind>.archived" or "<kind>.restored" with meta(row).
func SetArchived[T any](ctx context.Context, t *Tx, r Rows[T], id uuid.UUID, archive bool, meta func(*T) map[string]any) (*T, error) {
	row, err := LockRow(ctx, t, r.Lock, id, r.NotFound)
	if err != nil {
		return nil, err
	}
	switch archived := *r.ArchivedAt(row) != nil; {
	case archive && archived:
		return nil, apperr.New(apperr.Conflict, "the %s is already archived", r.Kind)
	case !archive && !archived:
		return nil, apperr.New(apperr.Conflict, "the %s is not archived", r.Kind)
	}
	next, action := *row, r.Kind+".restored"
	*r.ArchivedAt(&next) = nil
	if archive {
		now := t.Now
		*r.ArchivedAt(&next), action = &now, r.Kind+".archived"
	}
	out, err := r.Save(ctx, t, &next, t.Now)
	if err != nil {
		return nil, r.Constraints.Map(err, "")
	}
	return out, t.Audit(ctx, action, r.Kind, id.String(), meta(row))
}
