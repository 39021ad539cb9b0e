package audit

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/reqmeta"
	"tenantgraph/internal/tenant"
)

// Service records and lists audit events.
type Service struct {
	db     *sqlx.DB
	store  Store
	sealer *Sealer
}

// NewService returns the audit service reading through db.
func NewService(db *sqlx.DB) *Service { return &Service{db: db} }

// SealWith has sl seal each event this service records as soon as its
// transaction commits (a run of db.WithTx), instead of at its next poll.
func (s *Service) SealWith(sl *Sealer) { s.sealer = sl }

// actionRe is the shape of every action (the table's CHECK).
var actionRe = regexp.MustCompile(`^[a-z_]+\.[a-z_]+$`)

// Record appends e in the caller's transaction, with the request's client
// address and user agent.
func (s *Service) Record(ctx context.Context, tx sqlx.ExecerContext, e Entry) error {
	m := reqmeta.From(ctx)
	if err := s.store.Insert(ctx, tx, e, m.IP, m.UserAgent); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	if s.sealer != nil {
		if t := sqlTx(tx); t != nil {
			org := e.OrganizationID
			db.AfterCommit(t, func() { s.sealer.Poke(org) })
		}
	}
	return nil
}

// sqlTx is the transaction under q (a gated transaction embeds it); nil when
// q is none.
func sqlTx(q sqlx.ExecerContext) *sqlx.Tx {
	switch t := q.(type) {
	case *sqlx.Tx:
		return t
	case *tenant.Tx:
		return t.Tx
	}
	return nil
}

// CountSince counts org's events with one of actions recorded after since, on q
// (the caller's transaction: under a lock, it sees every event committed before
// the lock was granted): all of them, and those whose metadata has key equal to
// value. Rate limits that must hold across server replicas count this way.
func (s *Service) CountSince(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, actions []string, since time.Time, key, value string) (all, matching int, err error) {
	if all, matching, err = s.store.CountSince(ctx, q, org, actions, since, key, value); err != nil {
		return 0, 0, fmt.Errorf("count audit events %v: %w", actions, err)
	}
	return all, matching, nil
}

// CountByActorSince counts actor's events with one of actions recorded after
// since, across every organization, on tx. It serialises callers counting for
// one actor (a transaction-scoped advisory lock taken first), so a limit per
// actor holds across replicas and concurrent requests, as CountSince's do
// under the organization's lock.
func (s *Service) CountByActorSince(ctx context.Context, tx sqlx.ExtContext, actor uuid.UUID, actions []string, since time.Time) (int, error) {
	n, err := s.store.CountByActorSince(ctx, tx, actor, actions, since)
	if err != nil {
		return 0, fmt.Errorf("count audit events of an actor %v: %w", actions, err)
	}
	return n, nil
}

// List returns a page of org's events, newest first. The caller has checked
// that the viewer may read org's log.
func (s *Service) List(ctx context.Context, org uuid.UUID, f Filter, first *int, after *string) (*Connection, error) {
	if f.Action != nil && !actionRe.MatchString(*f.Action) {
		return nil, apperr.Invalid("action", "an action looks like member.invited")
	}
	req, err := page.Parse[int64](first, after, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Page(ctx, s.db, org, f, req.After, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("audit log page: %w", err)
	}
	return page.Build(req, rows, func(e *Event) page.Key[int64] { return page.Key[int64]{V: e.Seq} }, func(ctx context.Context) (int, error) {
		return s.store.Count(ctx, s.db, org, f)
	}), nil
}
