package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
)

// Integrity is the result of checking an organization's hash chain.
type Integrity struct {
	OrganizationID uuid.UUID `db:"-"`
	// Checked is how many links were recomputed.
	Checked int64 `db:"checked"`
	// LastVerified is the chain number of the last link that holds (0: none).
	LastVerified int64 `db:"last_good"`
	// BrokenSeq and BrokenEventID name the first link that does not hold:
	// its event was changed, or the chain itself was.
	BrokenSeq     *int64     `db:"broken_seq"`
	BrokenEventID *uuid.UUID `db:"broken_event"`
	// Unsealed is how many committed events wait for their seal.
	Unsealed int64 `db:"unsealed"`
}

// Broken reports whether the chain has a link that does not hold.
func (i *Integrity) Broken() bool { return i.BrokenSeq != nil }

// Verify recomputes org's chain from its events as they are (audit_verify).
func (Store) Verify(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID) (*Integrity, error) {
	out := Integrity{OrganizationID: org}
	err := sqlx.GetContext(ctx, q, &out, `SELECT v.checked, v.last_good, v.broken_seq, v.broken_event,
		(SELECT count(*) FROM audit_unsealed u WHERE u.organization_id = $1) AS unsealed
		FROM audit_verify($1) AS v`, org)
	return &out, err
}

// Seal chains org's committed unsealed events and returns how many.
func (Store) Seal(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT audit_seal($1)`, org)
	return n, err
}

// UnsealedOrgs returns the organizations with events waiting for their seal.
func (Store) UnsealedOrgs(ctx context.Context, q sqlx.QueryerContext) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := sqlx.SelectContext(ctx, q, &out, `SELECT DISTINCT organization_id FROM audit_unsealed`)
	return out, err
}

// Orgs returns every organization with an audit log (for `tenantgraph audit verify`).
func (Store) Orgs(ctx context.Context, q sqlx.QueryerContext) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := sqlx.SelectContext(ctx, q, &out, `SELECT id FROM organizations ORDER BY id`)
	return out, err
}

// Integrity checks org's chain (the OWNER's Organization.auditLogIntegrity).
func (s *Service) Integrity(ctx context.Context, org uuid.UUID) (*Integrity, error) {
	i, err := s.store.Verify(ctx, s.db, org)
	if err != nil {
		return nil, fmt.Errorf("verify audit chain: %w", err)
	}
	return i, nil
}

// Event returns org's event id (nil when there is none).
func (s *Service) Event(ctx context.Context, org, id uuid.UUID) (*Event, error) {
	e, err := s.store.Get(ctx, s.db, org, id)
	if err != nil {
		return nil, fmt.Errorf("audit event: %w", err)
	}
	return e, nil
}

// Get returns org's event id; nil when there is none.
func (Store) Get(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Event, error) {
	return db.GetOrNil[Event](ctx, q, `SELECT seq, id, organization_id, actor_id, action, target_type, target_id,
		metadata, host(ip) AS ip, user_agent, created_at FROM audit_events WHERE organization_id = $1 AND id = $2`, org, id)
}

// VerifyAll checks every organization's chain (or only orgs, when given) and
// reports each broken one through report; it returns how many chains it
// checked and how many were broken.
func VerifyAll(ctx context.Context, d *sqlx.DB, orgs []uuid.UUID, report func(org uuid.UUID, i *Integrity)) (checked, broken int, err error) {
	var st Store
	if len(orgs) == 0 {
		if orgs, err = st.Orgs(ctx, d); err != nil {
			return 0, 0, err
		}
	}
	for _, org := range orgs {
		i, err := st.Verify(ctx, d, org)
		if err != nil {
			return checked, broken, fmt.Errorf("organization %s: %w", org, err)
		}
		checked++
		if i.Broken() {
			broken++
		}
		report(org, i)
	}
	return checked, broken, nil
}

// Sealer chains the organizations' committed audit events shortly after they
// commit. The events this process records are sealed as soon as their
// transaction commits (Poke, through db.AfterCommit: no NOTIFY, whose lock at
// commit every writing transaction would queue on); every SealInterval it also
// seals every organization with unsealed events (another process's that
// stopped before sealing, a migration's, the CLI's). Each organization's
// events are sealed as a batch, in one short transaction however many it
// committed meanwhile. Every replica runs one; audit_seal serializes them per
// organization, and its NOTIFY (org_events) tells every replica's Feed.
type Sealer struct {
	db    *sqlx.DB
	log   *slog.Logger
	store Store

	mu     sync.Mutex
	poked  map[uuid.UUID]struct{}
	wake   chan struct{}
	failed time.Time // the last logged failure: at most one a second
}

// SealInterval is how often the sealer looks for unsealed events besides the
// ones it was poked for.
const SealInterval = 50 * time.Millisecond

// NewSealer returns a sealer of d's audit log.
func NewSealer(d *sqlx.DB, log *slog.Logger) *Sealer {
	if log == nil {
		log = slog.Default()
	}
	return &Sealer{db: d, log: log.With(slog.String("component", "audit.sealer")),
		poked: map[uuid.UUID]struct{}{}, wake: make(chan struct{}, 1)}
}

// Poke asks for org's committed events to be sealed now. It never blocks;
// pokes that come while a seal runs are sealed together next.
func (s *Sealer) Poke(org uuid.UUID) {
	s.mu.Lock()
	s.poked[org] = struct{}{}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run seals until ctx ends.
func (s *Sealer) Run(ctx context.Context) {
	tick := time.NewTicker(SealInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			s.mu.Lock()
			orgs := make([]uuid.UUID, 0, len(s.poked))
			for org := range s.poked {
				orgs = append(orgs, org)
			}
			clear(s.poked)
			s.mu.Unlock()
			for _, org := range orgs {
				s.seal(ctx, org)
			}
		case <-tick.C:
			s.sealAll(ctx)
		}
	}
}

func (s *Sealer) sealAll(ctx context.Context) {
	orgs, err := s.store.UnsealedOrgs(ctx, s.db)
	if err != nil {
		s.logFailure(ctx, "unsealed audit events", err)
		return
	}
	for _, org := range orgs {
		s.seal(ctx, org)
	}
}

func (s *Sealer) seal(ctx context.Context, org uuid.UUID) {
	_, err := s.store.Seal(ctx, s.db, org)
	if db.IsStatementTimeout(err) {
		// A backlog (after an outage) takes audit_seal longer than the
		// requests' statement timeout, which would cut it every time: it is
		// sealed again in a transaction without it. An ordinary seal stays
		// one statement.
		s.log.Warn("sealing a backlog of audit events past the statement timeout: again without it", slog.String("organization", org.String()))
		err = db.WithTx(ctx, s.db, func(tx *sqlx.Tx) error {
			if err := db.WithoutStatementTimeout(ctx, tx); err != nil {
				return err
			}
			_, err := s.store.Seal(ctx, tx, org)
			return err
		})
	}
	if err != nil {
		s.logFailure(ctx, "sealing audit events", err, slog.String("organization", org.String()))
	}
}

// logFailure logs a failure unless ctx ended, at most once a second (the
// sealer retries 20 times a second while the database is away).
func (s *Sealer) logFailure(ctx context.Context, msg string, err error, attrs ...any) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	now := time.Now()
	quiet := now.Sub(s.failed) < time.Second
	if !quiet {
		s.failed = now
	}
	s.mu.Unlock()
	if !quiet {
		s.log.Error(msg, append(attrs, slog.Any("err", err))...)
	}
}
