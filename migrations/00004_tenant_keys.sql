-- The tenant-key rule (docs/api.md, "Tenant keys"; enforced on the whole migrated schema by
-- migrations/catalog_test.go):
--   a. a tenant table (one with organization_id) has organization_id in its primary key
--      and in every unique constraint and unique index;
--   b. a foreign key between two tenant tables matches organization_id to organization_id;
--   c. every foreign key is covered by a full (non-partial) index led by its columns.

-- +goose Up
-- invitations: (organization_id, id) is the key; the bare UNIQUE (id) goes.
ALTER TABLE invitations DROP CONSTRAINT invitations_id_key;
-- Tokens are unique per organization. Accepting or declining looks a token up without
-- knowing the organization, through the plain index; the store takes a hit only when
-- exactly one row matches, and the service re-reads it by (organization_id, token_hash)
-- and checks it is addressed to the caller's email.
ALTER TABLE invitations DROP CONSTRAINT invitations_token_key;
ALTER TABLE invitations ADD CONSTRAINT invitations_org_token_key UNIQUE (organization_id, token_hash);
CREATE INDEX invitations_token_idx ON invitations (token_hash);
-- audit_events: (organization_id, id) is the key; paging uses audit_events_page_idx
-- (organization_id, seq DESC); seq comes from an identity column.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_seq_key;

-- Foreign keys that a user's deletion checks or that joins walk.
CREATE INDEX invitations_invited_by_idx ON invitations (invited_by);
CREATE INDEX invitations_responded_by_idx ON invitations (responded_by);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id);
-- The partial index (WHERE revoked_at IS NULL) cannot serve the cascade from users; the
-- full one still serves "this user's live sessions".
DROP INDEX refresh_tokens_user_idx;
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- +goose Down
DROP INDEX refresh_tokens_user_idx;
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
DROP INDEX audit_events_actor_idx;
DROP INDEX invitations_responded_by_idx;
DROP INDEX invitations_invited_by_idx;
-- These fail, as they should, if rows now break the old global uniqueness.
ALTER TABLE audit_events ADD CONSTRAINT audit_events_seq_key UNIQUE (seq);
DROP INDEX invitations_token_idx;
ALTER TABLE invitations DROP CONSTRAINT invitations_org_token_key;
ALTER TABLE invitations ADD CONSTRAINT invitations_token_key UNIQUE (token_hash);
ALTER TABLE invitations ADD CONSTRAINT invitations_id_key UNIQUE (id);
