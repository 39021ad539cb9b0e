package org

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
)

// Quota is one of an organization's limits and how much of it is used now.
type Quota struct {
	Used int `db:"used"`
	Max  int `db:"max"`
}

// OrganizationLimits are an organization's quotas (docs/api.md, "Quotas"). The
// database enforces them, in the transaction of every write that uses one
// (migrations/00021_organization_quotas.sql): past one, the write is refused
// with QUOTA_EXCEEDED and writes nothing.
type OrganizationLimits struct {
	// Seats: members plus pending, unexpired invitations. An invitation takes a
	// seat when it is sent (or resent after it expired), and the members alone
	// are counted again at its acceptance.
	Seats Quota
	// Customers and Products: the active (not archived) ones; archiving frees one.
	Customers Quota
	Products  Quota
	// OrdersPerDay: the orders placed on the organization's local day.
	OrdersPerDay Quota
	// NotesPerCustomer: the notes one customer may have.
	NotesPerCustomer int
}

// LimitsChange sets the limits whose fields are not nil (an operator's change:
// `tenantgraph org limits set`).
type LimitsChange struct {
	Seats, Customers, NotesPerCustomer, Products, OrdersPerDay *int
}

// limitRanges are the values each limit may take (the columns' CHECKs): an
// organization keeps at least its owner's seat.
var limitRanges = []struct {
	name     string
	min, max int
	value    func(LimitsChange) *int
}{
	{"seats", 1, 1_000_000, func(c LimitsChange) *int { return c.Seats }},
	{"customers", 0, 100_000_000, func(c LimitsChange) *int { return c.Customers }},
	{"notesPerCustomer", 0, 1_000_000, func(c LimitsChange) *int { return c.NotesPerCustomer }},
	{"products", 0, 100_000_000, func(c LimitsChange) *int { return c.Products }},
	{"ordersPerDay", 0, 100_000_000, func(c LimitsChange) *int { return c.OrdersPerDay }},
}

// Limits returns orgs' limits and their use now, by organization (a loader's
// source: none for an organization that does not exist). The caller has
// checked the viewer's role.
func (s *Service) Limits(ctx context.Context, orgs []uuid.UUID) (map[uuid.UUID]*OrganizationLimits, error) {
	l, err := s.store.Limits(ctx, s.d.DB, orgs, s.d.Now())
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	return l, nil
}

// SetLimits changes orgID's limits (an operator's command: no member acts, so
// no audit event is recorded) and returns them with their use. A limit lowered
// below its use refuses new uses only: nothing is removed. NOT_FOUND when there
// is no such organization.
func (s *Service) SetLimits(ctx context.Context, orgID uuid.UUID, c LimitsChange) (*OrganizationLimits, error) {
	for _, r := range limitRanges {
		if v := r.value(c); v != nil && (*v < r.min || *v > r.max) {
			return nil, apperr.Invalid(r.name, "%s must be between %d and %d", r.name, r.min, r.max)
		}
	}
	var out *OrganizationLimits
	err := db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		ok, err := s.store.SetLimits(ctx, tx, orgID, c, now)
		if err != nil {
			return fmt.Errorf("set limits: %w", err)
		}
		if !ok {
			return apperr.New(apperr.NotFound, "organization not found")
		}
		all, err := s.store.Limits(ctx, tx, []uuid.UUID{orgID}, now)
		out = all[orgID]
		return err
	})
	return out, err
}
