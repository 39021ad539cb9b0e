package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
)

// MaxKeyLen bounds an idempotency key; migrations/00014's CHECK mirrors the rule.
const MaxKeyLen = 100

var keyRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

// Once makes a mutation idempotent, the way Stripe's Idempotency-Key and
// Shopify's @idempotent do. With a nil key it just runs fn. With a key, in the
// gate's transaction t:
//   - the first request with it runs fn, and stores (organization, actor, key)
//     with a hash of op and request and fn's result, in the same transaction:
//     for the gate's IdempotencyTTL (24 hours);
//   - a later request with the key and the same op and request gets that result
//     without running fn (and writes nothing, audits nothing);
//   - one with the key and another request is CONFLICT on idempotencyKey;
//   - one that arrives while the first is running waits for it (the key's row
//     is locked until the first transaction ends), then gets its result;
//   - a first request that fails stores nothing (its transaction rolls back),
//     so a retry with the key runs again.
//
// request is the mutation's input as the client sent it (its JSON is hashed);
// T must survive a JSON round trip.
func Once[T any](ctx context.Context, t *Tx, key *string, op string, request any, fn func() (T, error)) (T, error) {
	var zero T
	if key == nil {
		return fn()
	}
	if !keyRe.MatchString(*key) {
		return zero, apperr.Invalid("idempotencyKey", "an idempotency key is 1 to %d letters, digits and _ . : -", MaxKeyLen)
	}
	body, err := json.Marshal(request)
	if err != nil {
		return zero, fmt.Errorf("idempotency: request: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write(body)
	hash := h.Sum(nil)
	org, actor := t.Actor.OrganizationID, t.Actor.UserID

	claimed, err := store.claimKey(ctx, t, org, actor, *key, op, hash, t.Now, t.Now.Add(t.g.IdempotencyTTL))
	if err != nil {
		return zero, fmt.Errorf("idempotency: claim key: %w", err)
	}
	if !claimed {
		row, err := store.key(ctx, t, org, actor, *key)
		if err != nil {
			return zero, fmt.Errorf("idempotency: read key: %w", err)
		}
		if row == nil || row.Result == nil {
			// Not possible: a claimed key is committed with its result.
			return zero, fmt.Errorf("idempotency: key %q has no result", *key)
		}
		if row.Operation != op || string(row.RequestHash) != string(hash) {
			return zero, &apperr.Error{Code: apperr.Conflict, Field: "idempotencyKey",
				Message: "this idempotency key was used for another request: use a new key for a new request"}
		}
		var out T
		if err := json.Unmarshal([]byte(*row.Result), &out); err != nil {
			return zero, fmt.Errorf("idempotency: stored result: %w", err)
		}
		return out, nil
	}
	out, err := fn()
	if err != nil {
		return zero, err
	}
	result, err := json.Marshal(out)
	if err != nil {
		return zero, fmt.Errorf("idempotency: result: %w", err)
	}
	if err := store.saveResult(ctx, t, org, actor, *key, string(result)); err != nil {
		return zero, fmt.Errorf("idempotency: save result: %w", err)
	}
	return out, nil
}

// SweepKeys deletes the expired idempotency keys of every organization, in
// batches, and returns how many it deleted: the cleanup job (the server's
// hourly purge, on every replica; a key found expired before it runs is taken
// over by its next request anyway).
func SweepKeys(ctx context.Context, d *sqlx.DB, now time.Time) (int, error) {
	const batch = 1000
	total := 0
	for {
		n, err := store.sweep(ctx, d, now, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}
