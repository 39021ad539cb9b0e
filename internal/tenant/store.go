package tenant

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
)

// sqlStore is the kit's SQL: the rows the gate locks and the idempotency keys.
type sqlStore struct{}

var store sqlStore

// LockOrg locks the organization row for a membership change (see
// LockOrganization): NOT_FOUND when there is none. For the transactions that
// lock it outside the gate (answering an invitation, whose actor is no member yet).
func LockOrg(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*Organization, error) {
	return store.lockOrg(ctx, q, id)
}

func (sqlStore) lockOrg(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*Organization, error) {
	var o Organization
	err := sqlx.GetContext(ctx, q, &o, `SELECT o.id, o.name, o.slug, o.created_at, o.currency, o.time_zone FROM organizations o WHERE o.id = $1 FOR NO KEY UPDATE`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrOrgNotFound
	}
	return &o, err
}

// member returns user's membership of org with lock ("FOR SHARE" or "FOR
// UPDATE"); nil when user is not a member.
func (sqlStore) member(ctx context.Context, q sqlx.QueryerContext, org, user uuid.UUID, lock string) (*Membership, error) {
	return db.GetOrNil[Membership](ctx, q, `
		SELECT m.organization_id, m.user_id, m.role, m.created_at FROM organization_members m
		WHERE m.organization_id = $1 AND m.user_id = $2 `+lock, org, user)
}

// idempotencyRow is a key's stored request and result.
type idempotencyRow struct {
	Operation   string  `db:"operation"`
	RequestHash []byte  `db:"request_hash"`
	Result      *string `db:"result"`
}

// claimKey inserts the key for this request, or takes over an expired one, and
// reports whether it did. A key another transaction is claiming makes it wait
// until that transaction ends (the primary key's insert lock): when that one
// commits, the key is not claimed here; when it rolls back, it is.
func (sqlStore) claimKey(ctx context.Context, q sqlx.QueryerContext, org, actor uuid.UUID, key, op string, hash []byte, now, expires time.Time) (bool, error) {
	var claimed bool
	err := sqlx.GetContext(ctx, q, &claimed, `
		INSERT INTO idempotency_keys AS k (organization_id, actor_id, key, operation, request_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (organization_id, actor_id, key) DO UPDATE
			SET operation = EXCLUDED.operation, request_hash = EXCLUDED.request_hash, result = NULL,
				created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
			WHERE k.expires_at <= EXCLUDED.created_at
		RETURNING true`, org, actor, key, op, hash, now, expires)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return claimed, err
}

// saveResult stores the result of the request that claimed the key.
func (sqlStore) saveResult(ctx context.Context, q sqlx.ExecerContext, org, actor uuid.UUID, key, result string) error {
	_, err := q.ExecContext(ctx, `UPDATE idempotency_keys SET result = $4
		WHERE organization_id = $1 AND actor_id = $2 AND key = $3`, org, actor, key, result)
	return err
}

// key reads a key's stored request and result.
func (sqlStore) key(ctx context.Context, q sqlx.QueryerContext, org, actor uuid.UUID, key string) (*idempotencyRow, error) {
	return db.GetOrNil[idempotencyRow](ctx, q, `SELECT operation, request_hash, result FROM idempotency_keys
		WHERE organization_id = $1 AND actor_id = $2 AND key = $3`, org, actor, key)
}

// sweep deletes up to limit keys expired at now, every organization's (the
// cleanup job's one statement across tenants), and returns how many.
func (sqlStore) sweep(ctx context.Context, q sqlx.ExecerContext, now time.Time, limit int) (int, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2))`, now, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
