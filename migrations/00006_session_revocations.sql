-- +goose Up
-- Every replica loads the sessions revoked within the last access-token lifetime
-- when it starts and after its listener reconnects (docs/api.md, "Tokens").
CREATE INDEX refresh_tokens_revoked_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP INDEX refresh_tokens_revoked_idx;
