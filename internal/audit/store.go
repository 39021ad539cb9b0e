package audit

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/page"
)

// Store is the audit log's SQL. Every method runs on the caller's q: a write on
// the transaction of the change it records.
type Store struct{}

// Insert appends e with the client's address and user agent.
func (Store) Insert(ctx context.Context, q sqlx.ExecerContext, e Entry, ip, userAgent string) error {
	meta := []byte("{}")
	if e.Metadata != nil {
		var err error
		if meta, err = json.Marshal(e.Metadata); err != nil {
			return err
		}
	}
	_, err := q.ExecContext(ctx, `
		INSERT INTO audit_events (organization_id, actor_id, action, target_type, target_id, metadata, ip, user_agent, created_at)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, nullif($7, '')::inet, nullif($8, ''), $9)`,
		e.OrganizationID, e.ActorID, e.Action, e.TargetType, e.TargetID, string(meta), ip, userAgent, e.At) // text: a []byte goes as binary jsonb (db.Open)
	return err
}

// order is the log's: newest first, by seq (unique, so no tie-break).
var order = page.Order{Col: "seq", Dir: page.Desc}

// Page returns up to limit of org's events matching f after cur (a seq; nil:
// from the newest), newest first.
func (Store) Page(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, cur *page.Key[int64], limit int) ([]*Event, error) {
	var out []*Event
	after, args := page.After(order, cur, []any{org, f.Action, f.ActorID, limit})
	err := sqlx.SelectContext(ctx, q, &out, `
		SELECT seq, id, organization_id, actor_id, action, target_type, target_id, metadata,
		       host(ip) AS ip, user_agent, created_at
		FROM audit_events
		WHERE organization_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR actor_id = $3)`+after+`
		ORDER BY `+order.By()+` LIMIT $4`, args...)
	return out, err
}

// Count counts org's events matching f.
func (Store) Count(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `
		SELECT count(*) FROM audit_events WHERE organization_id = $1
		AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR actor_id = $3)`, org, f.Action, f.ActorID)
	return n, err
}

// CountSince counts org's events with one of actions recorded after since: all
// of them, and those whose metadata has key equal to value. An index whose
// predicate is exactly those actions (audit_events_invitation_mail_idx for the
// invitation mails) makes it read only the window's rows.
func (Store) CountSince(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, actions []string, since time.Time, key, value string) (all, matching int, err error) {
	err = q.QueryRowxContext(ctx, countSinceSQL, org, pq.Array(actions), since, key, value).Scan(&all, &matching)
	return all, matching, err
}

// CountByActorSince counts actor's events, in every organization, with one of
// actions recorded after since. It first takes a transaction-scoped advisory
// lock on actor (q must be a transaction), so callers counting for one actor
// count in turn, each seeing the events the one before committed. An index
// whose predicate holds those actions (audit_events_actor_limits_idx) keeps it
// to the window's rows.
func (Store) CountByActorSince(ctx context.Context, q sqlx.ExtContext, actor uuid.UUID, actions []string, since time.Time) (int, error) {
	// Two statements: in READ COMMITTED each statement sees what was committed
	// when it started, so the count must start after the lock is granted.
	if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('audit_events.actor'), hashtext($1::text))`, actor); err != nil {
		return 0, err
	}
	var n int
	err := sqlx.GetContext(ctx, q, &n, `
		SELECT count(*) FROM audit_events WHERE actor_id = $1 AND action = ANY($2) AND created_at > $3`,
		actor, pq.Array(actions), since)
	return n, err
}

const countSinceSQL = `
	SELECT count(*), count(*) FILTER (WHERE metadata->>$4 = $5)
	FROM audit_events
	WHERE organization_id = $1 AND action = ANY($2) AND created_at > $3`
