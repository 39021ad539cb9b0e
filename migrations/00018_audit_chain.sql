-- A tamper-evident audit log (internal/audit, docs/api.md "Audit log"): every
-- organization's events form a hash chain, sealed shortly after they commit.
--
-- Appends do not wait on the chain: an audit insert only queues its event
-- (audit_unsealed, one row; no NOTIFY, whose commit-time lock every writer would take). A sealer (internal/audit.Sealer,
-- on every replica) chains an organization's committed events in one short transaction
-- (audit_seal), serialized per organization by a transaction-level advisory lock. It
-- numbers them in the order it finds them committed, so a sealed number (the chain's
-- seq) never goes to an event that commits after a later number was given out: a
-- reader resuming after a chain number misses nothing.
--
-- hash = sha256(prev_hash || the event's canonical content); the first prev_hash is 32
-- zero bytes. audit_verify recomputes the chain from the events as they are.

-- +goose Up
CREATE TABLE audit_unsealed (
    organization_id uuid   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    event_seq       bigint NOT NULL,
    PRIMARY KEY (organization_id, event_seq)
);

CREATE TABLE audit_chain (
    -- No foreign key to organizations either: the sealer's insert would take FOR KEY SHARE
    -- on the organization row and wait behind whoever holds it FOR UPDATE (a currency
    -- change), stalling every organization's seal behind it. Its events hold the key.
    organization_id uuid        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq >= 1),
    event_id        uuid        NOT NULL,
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    sealed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, seq),
    -- No foreign key to audit_events: an event removed behind the log's back (TRUNCATE, which
    -- a foreign key would refuse before the log's own trigger could say why) is a broken link
    -- that audit_verify names.
    CONSTRAINT audit_chain_event_key UNIQUE (organization_id, event_id)
);

-- +goose StatementBegin
-- The content an event's hash covers, as text PostgreSQL writes the same way every time.
CREATE FUNCTION audit_canonical(e audit_events) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(e.seq, e.id, e.organization_id, e.actor_id, e.action, e.target_type, e.target_id,
        e.metadata, host(e.ip), e.user_agent, to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))::text
$$;

CREATE FUNCTION audit_events_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_unsealed (organization_id, event_seq) VALUES (NEW.organization_id, NEW.seq);
    RETURN NULL;
END $$;

-- Chains org's committed unsealed events; returns how many. One sealer per organization
-- at a time (the advisory lock); its statements see what committed before they started.
CREATE FUNCTION audit_seal(org uuid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint := 0;
    last_hash bytea  := '\x0000000000000000000000000000000000000000000000000000000000000000';
    h         bytea;
    n         integer := 0;
    r         audit_events;
    seqs      bigint[] := '{}';
    ids       uuid[] := '{}';
    hashes    bytea[] := '{}';
    prevs     bytea[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('audit_seal:' || org::text, 0));
    SELECT c.seq, c.hash INTO last_seq, last_hash FROM audit_chain c WHERE c.organization_id = org ORDER BY c.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        last_seq := 0;
        last_hash := '\x0000000000000000000000000000000000000000000000000000000000000000';
    END IF;
    FOR r IN SELECT e.* FROM audit_unsealed u JOIN audit_events e ON e.organization_id = u.organization_id AND e.seq = u.event_seq
             WHERE u.organization_id = org ORDER BY u.event_seq LOOP
        h := sha256(last_hash || convert_to(audit_canonical(r), 'UTF8'));
        seqs := seqs || r.seq;
        ids := ids || r.id;
        prevs := prevs || last_hash;
        hashes := hashes || h;
        last_hash := h;
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        INSERT INTO audit_chain (organization_id, seq, event_id, hash, prev_hash)
        SELECT org, last_seq + i, ids[i], hashes[i], prevs[i] FROM generate_series(1, n) AS i;
        DELETE FROM audit_unsealed WHERE organization_id = org AND event_seq = ANY (seqs);
    END IF;
    RETURN n;
END $$;

-- Recomputes org's chain from its events as they are: how many links it checked, the last
-- one that holds, and the first that does not (its chain number and event), if any.
CREATE FUNCTION audit_verify(org uuid, OUT checked bigint, OUT last_good bigint, OUT broken_seq bigint, OUT broken_event uuid)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    c    record;
BEGIN
    checked := 0;
    last_good := 0;
    FOR c IN SELECT ch.seq, ch.event_id, ch.hash, ch.prev_hash, e AS ev
             FROM audit_chain ch LEFT JOIN audit_events e ON e.organization_id = ch.organization_id AND e.id = ch.event_id
             WHERE ch.organization_id = org ORDER BY ch.seq LOOP
        checked := checked + 1;
        IF c.seq <> last_good + 1 OR c.prev_hash <> prev OR (c.ev).id IS NULL
           OR c.hash <> sha256(prev || convert_to(audit_canonical(c.ev), 'UTF8')) THEN
            broken_seq := c.seq;
            broken_event := c.event_id;
            RETURN;
        END IF;
        prev := c.hash;
        last_good := c.seq;
    END LOOP;
END $$;

CREATE FUNCTION audit_chain_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_chain is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_queue AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_queue();
CREATE TRIGGER audit_chain_no_update_delete BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append_only();

-- The events recorded so far wait for their seal like any other.
INSERT INTO audit_unsealed (organization_id, event_seq) SELECT organization_id, seq FROM audit_events;

-- +goose Down
DROP TRIGGER audit_events_queue ON audit_events;
DROP TABLE audit_chain;
DROP TABLE audit_unsealed;
DROP FUNCTION audit_chain_append_only();
DROP FUNCTION audit_verify(uuid);
DROP FUNCTION audit_seal(uuid);
DROP FUNCTION audit_events_queue();
DROP FUNCTION audit_canonical(audit_events);
