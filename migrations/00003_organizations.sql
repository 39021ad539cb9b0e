-- +goose Up
CREATE TABLE organizations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]'),
    slug       text        NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) BETWEEN 3 AND 48),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);
CREATE INDEX organizations_name_idx ON organizations (name, id);

CREATE TABLE organization_members (
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'MEMBER')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user_idx ON organization_members (user_id);
CREATE INDEX organization_members_page_idx ON organization_members (organization_id, created_at, user_id);
-- At most one owner per organization.
CREATE UNIQUE INDEX organization_members_one_owner ON organization_members (organization_id) WHERE role = 'OWNER';

-- At least one owner per organization, checked at commit so that a transfer can
-- demote and promote within one transaction.
-- +goose StatementBegin
CREATE FUNCTION organization_must_have_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org uuid;
BEGIN
    IF TG_TABLE_NAME = 'organizations' THEN
        org := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        org := OLD.organization_id;
    ELSE
        org := NEW.organization_id;
    END IF;
    IF EXISTS (SELECT 1 FROM organizations WHERE id = org)
       AND NOT EXISTS (SELECT 1 FROM organization_members WHERE organization_id = org AND role = 'OWNER') THEN
        RAISE EXCEPTION 'organization % has no owner', org
            USING ERRCODE = 'check_violation', CONSTRAINT = 'organization_has_owner';
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'organization_members' THEN
        IF OLD.organization_id <> NEW.organization_id THEN
            RAISE EXCEPTION 'a membership cannot move between organizations' USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE CONSTRAINT TRIGGER organization_members_has_owner
    AFTER INSERT OR UPDATE OR DELETE ON organization_members
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION organization_must_have_owner();
CREATE CONSTRAINT TRIGGER organizations_has_owner
    AFTER INSERT ON organizations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION organization_must_have_owner();

-- Invitations: tenant-owned, keyed by (organization_id, id).
CREATE TABLE invitations (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           text        NOT NULL CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%'),
    role            text        NOT NULL CHECK (role IN ('ADMIN', 'MEMBER')),
    -- EXPIRED is derived from expires_at when read; it is stored once a
    -- newer invitation for the same address replaces an expired one.
    status          text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'ACCEPTED', 'REVOKED', 'DECLINED', 'EXPIRED')),
    token_hash      bytea       NOT NULL CHECK (length(token_hash) = 32),
    invited_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    responded_by    uuid        REFERENCES users (id) ON DELETE SET NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT invitations_id_key UNIQUE (id),
    CONSTRAINT invitations_token_key UNIQUE (token_hash)
);
-- One pending invitation per address and organization.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (organization_id, email) WHERE status = 'PENDING';
CREATE INDEX invitations_email_idx ON invitations (email) WHERE status = 'PENDING';
CREATE INDEX invitations_page_idx ON invitations (organization_id, created_at DESC, id DESC);

-- Append-only audit log.
CREATE TABLE audit_events (
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    actor_id        uuid        REFERENCES users (id),
    action          text        NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_type     text,
    target_id       text,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    ip              inet,
    user_agent      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT audit_events_seq_key UNIQUE (seq)
);
CREATE INDEX audit_events_page_idx ON audit_events (organization_id, seq DESC);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE invitations;
DROP TABLE organization_members;
DROP TABLE organizations;
DROP FUNCTION organization_must_have_owner();
