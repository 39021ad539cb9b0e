-- Organization events (internal/audit.Feed, docs/events.md): a seal announces what it
-- chained. Each seal notifies org_events with "<organization id>:<its last chain number>"
-- when its transaction commits, so every replica's feed reads the new links at once
-- instead of polling. Only the sealer notifies: a NOTIFY takes a lock at commit, and
-- the writers of events never do.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_seal(org uuid) RETURNS integer LANGUAGE plpgsql AS $$
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
        PERFORM pg_notify('org_events', org::text || ':' || (last_seq + n));
    END IF;
    RETURN n;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_seal(org uuid) RETURNS integer LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd
