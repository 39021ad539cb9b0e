package account

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
)

// Store is the accounts' SQL. Methods take the querier so services choose the transaction.
type Store struct{}

const userCols = `id, email, name, email_verified_at, created_at`

func (Store) InsertUser(ctx context.Context, q sqlx.ExtContext, email, name, hash string, now time.Time) (*User, error) {
	var u User
	err := sqlx.GetContext(ctx, q, &u, `
		INSERT INTO users (email, name, password_hash, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		RETURNING `+userCols, email, name, hash, now)
	if db.IsViolation(err, db.UniqueViolation, "users_email_key") {
		return nil, &apperr.Error{Code: apperr.Conflict, Message: "an account with this email already exists", Field: "email"}
	}
	return &u, err
}

// UserCredentials returns the user with email and their password hash; nil when there is none.
func (Store) UserCredentials(ctx context.Context, q sqlx.QueryerContext, email string) (*User, string, error) {
	var row struct {
		User
		Hash string `db:"password_hash"`
	}
	err := sqlx.GetContext(ctx, q, &row, `SELECT `+userCols+`, password_hash FROM users WHERE lower(email) = $1`, email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	return &row.User, row.Hash, nil
}

// PasswordHash returns the user's password hash.
func (Store) PasswordHash(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (string, error) {
	var h string
	err := sqlx.GetContext(ctx, q, &h, `SELECT password_hash FROM users WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", apperr.ErrUnauthenticated
	}
	return h, err
}

// ReplacePassword sets a new hash only if the stored one is still old, and
// reports whether it did: the check and the write are one statement.
func (Store) ReplacePassword(ctx context.Context, q sqlx.ExecerContext, id uuid.UUID, old, hash string, now time.Time) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE users SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2`, id, old, hash, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UserByEmailForUpdate locks and returns the user with email; nil when there is none.
func (Store) UserByEmailForUpdate(ctx context.Context, q sqlx.QueryerContext, email string) (*User, error) {
	var u User
	err := sqlx.GetContext(ctx, q, &u, `SELECT `+userCols+` FROM users WHERE lower(email) = $1 FOR UPDATE`, email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &u, err
}

// UserForUpdate locks and returns the user.
func (Store) UserForUpdate(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*User, error) {
	var u User
	err := sqlx.GetContext(ctx, q, &u, `SELECT `+userCols+` FROM users WHERE id = $1 FOR UPDATE`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.ErrUnauthenticated
	}
	return &u, err
}

// UsersByIDs returns the users with the given ids, in no particular order.
func (Store) UsersByIDs(ctx context.Context, q sqlx.QueryerContext, ids []uuid.UUID) ([]*User, error) {
	var us []*User
	err := sqlx.SelectContext(ctx, q, &us, `SELECT `+userCols+` FROM users WHERE id = ANY($1)`, pq.Array(ids))
	return us, err
}

func (Store) SetPassword(ctx context.Context, q sqlx.ExecerContext, id uuid.UUID, hash string, now time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`, id, hash, now)
	return err
}

func (Store) MarkVerified(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, now time.Time) (*User, error) {
	var u User
	err := sqlx.GetContext(ctx, q, &u, `
		UPDATE users SET email_verified_at = coalesce(email_verified_at, $2), updated_at = $2
		WHERE id = $1 RETURNING `+userCols, id, now)
	return &u, err
}

// --- refresh tokens ---

func (Store) InsertRefreshToken(ctx context.Context, q sqlx.ExecerContext, user, family uuid.UUID, hash []byte, now, expires time.Time) error {
	_, err := q.ExecContext(ctx, `
		INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, user, family, hash, now, expires)
	return err
}

// ClaimRefreshToken marks a live token used and returns its user and family. Of
// concurrent claims of one token exactly one gets ok: the row lock serialises
// them and the losers' WHERE no longer matches.
func (Store) ClaimRefreshToken(ctx context.Context, q sqlx.QueryerContext, hash []byte, now time.Time) (user, family uuid.UUID, ok bool, err error) {
	var row struct {
		User   uuid.UUID `db:"user_id"`
		Family uuid.UUID `db:"family_id"`
	}
	err = sqlx.GetContext(ctx, q, &row, `
		UPDATE refresh_tokens SET used_at = $2
		WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
		RETURNING user_id, family_id`, hash, now)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, uuid.Nil, false, nil
	}
	return row.User, row.Family, err == nil, err
}

// GraceRefreshToken returns the user and family of a token that was rotated
// after since and whose session is still live (ok false otherwise). It takes a
// share lock on the token, so a revocation of the session waits for the
// caller's transaction (and then revokes what it issued) or goes first.
func (Store) GraceRefreshToken(ctx context.Context, q sqlx.QueryerContext, hash []byte, since, now time.Time) (user, family uuid.UUID, ok bool, err error) {
	var row struct {
		User   uuid.UUID `db:"user_id"`
		Family uuid.UUID `db:"family_id"`
	}
	err = sqlx.GetContext(ctx, q, &row, `
		SELECT user_id, family_id FROM refresh_tokens
		WHERE token_hash = $1 AND used_at > $2 AND revoked_at IS NULL AND expires_at > $3
		FOR SHARE`, hash, since, now)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, uuid.Nil, false, nil
	}
	return row.User, row.Family, err == nil, err
}

// RevokeReusedFamily revokes the session of hash when that token was rotated
// before usedBefore (a replay outside the grace period), and returns it.
func (st Store) RevokeReusedFamily(ctx context.Context, tx *sqlx.Tx, hash []byte, usedBefore, now time.Time) ([]uuid.UUID, error) {
	return st.revokeSessions(ctx, tx, now,
		`family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at <= $2)`, hash, usedBefore)
}

// RevokeFamilyOf revokes the session the token belongs to and returns it.
func (st Store) RevokeFamilyOf(ctx context.Context, tx *sqlx.Tx, hash []byte, now time.Time) ([]uuid.UUID, error) {
	return st.revokeSessions(ctx, tx, now, `family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)`, hash)
}

// RevokeUserSessions revokes every session of user except keep (uuid.Nil keeps
// none) and returns the sessions it ended.
func (st Store) RevokeUserSessions(ctx context.Context, tx *sqlx.Tx, user, keep uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	return st.revokeSessions(ctx, tx, now, `user_id = $1 AND family_id <> $2`, user, keep)
}

// RevokedChannel is the PostgreSQL notification channel of ended sessions: the
// payload is their ids, comma-separated. NOTIFY is delivered at commit, to every
// replica listening.
const RevokedChannel = "session_revoked"

// revokedPerNotification keeps a payload (37 bytes an id) under PostgreSQL's 8000 bytes.
const revokedPerNotification = 200

// revokeSessions revokes the live tokens of the families that cond (over
// refresh_tokens, with args from $1) selects, notifies RevokedChannel and
// returns the families it ended.
//
// It locks those tokens first and revokes in a second statement: a refresh that
// is rotating one of them holds its lock, so the first statement waits for it
// to commit and the second, with a fresh snapshot, also revokes the token that
// refresh issued; a refresh that comes later waits for this transaction and
// finds its token revoked. A single UPDATE would miss a token issued meanwhile.
func (Store) revokeSessions(ctx context.Context, tx *sqlx.Tx, now time.Time, cond string, args ...any) ([]uuid.UUID, error) {
	var locked []uuid.UUID
	if err := tx.SelectContext(ctx, &locked, `
		SELECT family_id FROM refresh_tokens WHERE revoked_at IS NULL AND `+cond+`
		ORDER BY id FOR UPDATE`, args...); err != nil {
		return nil, fmt.Errorf("lock sessions: %w", err)
	}
	families := slices.Compact(slices.SortedFunc(slices.Values(locked), func(a, b uuid.UUID) int {
		return bytes.Compare(a[:], b[:])
	}))
	if len(families) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE refresh_tokens SET revoked_at = $2
		WHERE family_id = ANY($1) AND revoked_at IS NULL`, pq.Array(families), now); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	for chunk := range slices.Chunk(families, revokedPerNotification) {
		ids := make([]string, len(chunk))
		for i, f := range chunk {
			ids[i] = f.String()
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, RevokedChannel, strings.Join(ids, ",")); err != nil {
			return nil, fmt.Errorf("notify revoked sessions: %w", err)
		}
	}
	return families, nil
}

// RevokedSessionsSince returns the sessions revoked after since, each with the
// time of its latest revocation.
func (Store) RevokedSessionsSince(ctx context.Context, q sqlx.QueryerContext, since time.Time) (map[uuid.UUID]time.Time, error) {
	var rows []struct {
		Family    uuid.UUID `db:"family_id"`
		RevokedAt time.Time `db:"revoked_at"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT family_id, max(revoked_at) AS revoked_at FROM refresh_tokens
		WHERE revoked_at > $1 GROUP BY family_id`, since); err != nil {
		return nil, fmt.Errorf("revoked sessions: %w", err)
	}
	out := make(map[uuid.UUID]time.Time, len(rows))
	for _, r := range rows {
		out[r.Family] = r.RevokedAt
	}
	return out, nil
}

// --- single-use emailed tokens ---

// ReplaceUserToken voids the user's unused tokens of purpose and stores a new one.
func (Store) ReplaceUserToken(ctx context.Context, q sqlx.ExecerContext, user uuid.UUID, purpose string, hash []byte, now, expires time.Time) error {
	if _, err := q.ExecContext(ctx, `
		UPDATE user_tokens SET used_at = $3
		WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL`, user, purpose, now); err != nil {
		return err
	}
	_, err := q.ExecContext(ctx, `
		INSERT INTO user_tokens (user_id, purpose, token_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, user, purpose, hash, now, expires)
	return err
}

// LastUserTokenAt returns when the newest token of purpose was issued to user (zero if never).
func (Store) LastUserTokenAt(ctx context.Context, q sqlx.QueryerContext, user uuid.UUID, purpose string) (time.Time, error) {
	var t sql.NullTime
	err := sqlx.GetContext(ctx, q, &t, `SELECT max(created_at) FROM user_tokens WHERE user_id = $1 AND purpose = $2`, user, purpose)
	return t.Time, err
}

// ClaimUserToken uses a live token of purpose and returns its user; ok is false when
// the token is unknown, used, voided or expired.
func (Store) ClaimUserToken(ctx context.Context, q sqlx.QueryerContext, hash []byte, purpose string, now time.Time) (uuid.UUID, bool, error) {
	var user uuid.UUID
	err := sqlx.GetContext(ctx, q, &user, `
		UPDATE user_tokens SET used_at = $3
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
		RETURNING user_id`, hash, purpose, now)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	return user, err == nil, err
}

// UserTokenValid reports whether an unused, unexpired token of purpose has hash,
// and whose it is, without using it up.
func (Store) UserTokenValid(ctx context.Context, q sqlx.QueryerContext, hash []byte, purpose string, now time.Time) (uuid.UUID, bool, error) {
	var user uuid.UUID
	err := sqlx.GetContext(ctx, q, &user, `
		SELECT user_id FROM user_tokens
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3`, hash, purpose, now)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	return user, err == nil, err
}

// PurgeTokens deletes the refresh and emailed tokens that have been dead (expired,
// revoked or used) since before it, and returns how many.
func (Store) PurgeTokens(ctx context.Context, q sqlx.ExecerContext, before time.Time) (int64, error) {
	var n int64
	for _, stmt := range []string{
		`DELETE FROM refresh_tokens WHERE expires_at < $1 OR revoked_at < $1`,
		`DELETE FROM user_tokens WHERE expires_at < $1 OR used_at < $1`,
	} {
		res, err := q.ExecContext(ctx, stmt, before)
		if err != nil {
			return n, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}
