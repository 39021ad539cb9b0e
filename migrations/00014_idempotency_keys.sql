-- Idempotency keys (internal/tenant.Once): a mutation that takes idempotencyKey
-- stores the key with a hash of its request and its result, in the mutation's own
-- transaction, for 24 hours. The primary key is also what makes a concurrent
-- request with the same key wait for the first one's transaction to end. Keys are
-- the actor's within the organization: they go with the membership. The cleanup
-- job (tenant.SweepKeys) deletes expired keys by expires_at.

-- +goose Up
CREATE TABLE idempotency_keys (
    organization_id uuid        NOT NULL,
    actor_id        uuid        NOT NULL,
    key             text        NOT NULL CONSTRAINT idempotency_keys_key_check CHECK (key ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    operation       text        NOT NULL,
    request_hash    bytea       NOT NULL CONSTRAINT idempotency_keys_hash_check CHECK (length(request_hash) = 32),
    result          jsonb,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, actor_id, key),
    CONSTRAINT idempotency_keys_member_fkey FOREIGN KEY (organization_id, actor_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
