package org

import (
	"context"
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

// Tx is a gated transaction: the actor's membership re-checked inside it, and
// the time the callback should record.
type Tx struct {
	*sqlx.Tx
	Actor *Member
	Now   time.Time
	// Org is the locked organization under LockOrganization; nil under LockActor
	// (an ordinary write does not read the organization row).
	Org *Organization
}

// Gate is the one tenant gate: every mutation of tenant data, in any area, runs
// its transaction through Run.
type Gate struct {
	db    *sqlx.DB
	now   func() time.Time
	store Store
}

// NewGate returns the tenant gate over db.
func NewGate(db *sqlx.DB, now func() time.Time) *Gate { return &Gate{db: db, now: now} }

// Run opens a transaction, takes lock, checks that actor is still a member of
// orgID with at least role need (not a member: NOT_FOUND, without revealing
// whether the organization exists; a lower role: FORBIDDEN) and runs fn in it.
// fn's error rolls the transaction back.
func (g *Gate) Run(ctx context.Context, actor, orgID uuid.UUID, need Role, lock Lock, fn func(t *Tx) error) error {
	return db.WithTx(ctx, g.db, func(tx *sqlx.Tx) error {
		t := &Tx{Tx: tx}
		var err error
		switch lock {
		case LockOrganization:
			if t.Org, err = g.store.LockOrg(ctx, tx, orgID); err != nil {
				return err
			}
			t.Actor, err = g.store.MemberForUpdate(ctx, tx, orgID, actor)
		case LockActor:
			t.Actor, err = g.store.MemberForShare(ctx, tx, orgID, actor)
		}
		if err != nil {
			return err
		}
		if err := CheckRole(t.Actor, need); err != nil {
			return err
		}
		t.Now = g.now()
		return fn(t)
	})
}

// CheckRole is the role gate shared by the @hasRole directive and the services:
// no membership is NOT_FOUND (the organization's existence is not revealed), a
// lower role is FORBIDDEN.
func CheckRole(m *Member, want Role) error {
	if m == nil {
		return errOrgNotFound
	}
	if !m.Role.AtLeast(want) {
		return apperr.New(apperr.Forbidden, "this needs the %s role", want)
	}
	return nil
}
