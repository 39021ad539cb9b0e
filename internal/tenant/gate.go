package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
)

// Lock is what a gated transaction locks before its callback runs.
type Lock int

const (
	// LockActor is for ordinary tenant writes (a customer, an order): only the
	// actor's membership row is locked, FOR SHARE. Writers in one organization
	// run in parallel, even while a membership change holds the organization
	// row; a removal or role change of the actor waits until the write has
	// committed, and a write that starts after such a change committed sees it
	// (and is refused when the actor is gone or now too low).
	LockActor Lock = iota
	// LockOrganization is for membership changes: the organization row is locked
	// first (FOR NO KEY UPDATE: the membership changes of one organization run
	// one at a time, in one lock order, while the foreign-key checks of ordinary
	// writes, which take FOR KEY SHARE, pass), then the actor's membership FOR UPDATE.
	LockOrganization
)

// Recorder writes an audit entry in the caller's transaction (the audit area).
type Recorder interface {
	Record(ctx context.Context, tx sqlx.ExecerContext, e Entry) error
}

// Gate is the one tenant gate: every mutation of tenant data, in any area, runs
// its transaction through it.
type Gate struct {
	db    *sqlx.DB
	now   func() time.Time
	audit Recorder
	// IdempotencyTTL is how long an idempotency key keeps its result (24 hours).
	IdempotencyTTL time.Duration
}

// NewGate returns the tenant gate over db, recording audit entries with audit.
func NewGate(db *sqlx.DB, now func() time.Time, audit Recorder) *Gate {
	return &Gate{db: db, now: now, audit: audit, IdempotencyTTL: 24 * time.Hour}
}

// Tx is a gated transaction: the actor's membership re-checked inside it, and
// the time the callback should record.
type Tx struct {
	*sqlx.Tx
	Actor *Membership
	Now   time.Time
	// Org is the locked organization under LockOrganization; nil under LockActor
	// (an ordinary write does not read the organization row).
	Org *Organization
	g   *Gate
}

// Do runs fn in a transaction of the gate and returns what it returns: it takes
// lock, checks that actor is still a member of orgID with at least role need
// (not a member: NOT_FOUND, without revealing whether the organization exists;
// a lower role: FORBIDDEN), then calls fn. fn's error rolls the transaction
// back.
//
// A transaction that fails with a serialization failure or a deadlock is run
// again from the start (db.RetryTx): a new transaction, the lock and the role
// check taken again, a new Now, and fn called again. This is safe because fn
// has no other way out than its transaction and its return values: whatever
// the failed attempt wrote was rolled back with it, mail goes through the
// outbox in the transaction, and only the last attempt's result is returned.
// An fn must not append to, or count in, variables outside it.
func Do[T any](ctx context.Context, g *Gate, actor, orgID uuid.UUID, need Role, lock Lock, fn func(t *Tx) (T, error)) (T, error) {
	var out T
	err := db.RetryTx(ctx, g.db, func(tx *sqlx.Tx) error {
		var zero T
		out = zero
		t := &Tx{Tx: tx, g: g}
		var err error
		switch lock {
		case LockOrganization:
			if t.Org, err = store.lockOrg(ctx, tx, orgID); err != nil {
				return err
			}
			t.Actor, err = store.member(ctx, tx, orgID, actor, "FOR UPDATE")
		default:
			t.Actor, err = store.member(ctx, tx, orgID, actor, "FOR SHARE")
		}
		if err != nil {
			return err
		}
		var have Role
		if t.Actor != nil {
			have = t.Actor.Role
		}
		if err := CheckRole(have, need); err != nil {
			return err
		}
		t.Now = g.now()
		out, err = fn(t)
		return err
	})
	return out, err
}

// Run is Do for a callback that returns nothing but its error.
func (g *Gate) Run(ctx context.Context, actor, orgID uuid.UUID, need Role, lock Lock, fn func(t *Tx) error) error {
	_, err := Do(ctx, g, actor, orgID, need, lock, func(t *Tx) (struct{}, error) { return struct{}{}, fn(t) })
	return err
}

// Audit records one event of the actor's organization in the transaction, at
// t.Now. target is the changed row's id ("" when the change has none, such as
// an import).
func (t *Tx) Audit(ctx context.Context, action, targetType, target string, meta map[string]any) error {
	return t.g.audit.Record(ctx, t, Entry{OrganizationID: t.Actor.OrganizationID, ActorID: t.Actor.UserID,
		Action: action, TargetType: targetType, TargetID: target, Metadata: meta, At: t.Now})
}

// Finder reads one of an organization's rows by id, locked FOR UPDATE, in a
// store (nil when the organization has none).
type Finder[T any] func(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*T, error)

// LockRow locks the actor's organization's row id through find: NOT_FOUND
// (notFound) when the organization has none.
func LockRow[T any](ctx context.Context, t *Tx, find Finder[T], id uuid.UUID, notFound error) (*T, error) {
	row, err := find(ctx, t, t.Actor.OrganizationID, id)
	if err != nil {
		return nil, fmt.Errorf("lock %T: %w", row, err)
	}
	if row == nil {
		return nil, notFound
	}
	return row, nil
}

// Versioned is a row with optimistic concurrency: a version bumped by every change.
type Versioned interface{ RowVersion() int }

// LockVersioned is LockRow, then the client's expectedVersion check: a row
// changed since that version is CONFLICT on expectedVersion (what names the
// row in the message). A nil expected skips the check.
func LockVersioned[T any, P interface {
	*T
	Versioned
}](ctx context.Context, t *Tx, find Finder[T], id uuid.UUID, notFound error, what string, expected *int) (P, error) {
	row, err := LockRow(ctx, t, find, id, notFound)
	if err != nil {
		return nil, err
	}
	p := P(row)
	if expected != nil && *expected != p.RowVersion() {
		return nil, &apperr.Error{Code: apperr.Conflict, Field: "expectedVersion",
			Message: fmt.Sprintf("the %s was changed meanwhile (version %d, expected %d): reload it", what, p.RowVersion(), *expected)}
	}
	return p, nil
}
