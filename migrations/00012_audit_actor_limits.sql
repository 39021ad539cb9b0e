-- Limits per actor across every organization (internal/org): the invitation mails one user
-- sends from all the organizations they administer, and the organizations one user creates.
-- Both are counted from the audit log inside the mutation's transaction (after an advisory
-- lock on the actor, audit.Store.CountByActorSince). This index holds only those events, by
-- actor then time, so a count reads one window of one actor: at most the cap's rows.

-- +goose Up
CREATE INDEX audit_events_actor_limits_idx ON audit_events (actor_id, created_at)
    WHERE action IN ('member.invited', 'invitation.resent', 'organization.created');

-- +goose Down
DROP INDEX audit_events_actor_limits_idx;
