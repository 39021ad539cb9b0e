-- Customers (CRM), the first business area inside an organization (docs/api.md, "Customers").
-- Every CHECK mirrors a rule of internal/customer (the service refuses first, with a
-- field; the database refuses whatever bypasses the service).

-- +goose Up
-- Search (below): pg_trgm gives trigram GIN indexes that serve ILIKE '%…%'; btree_gin lets
-- organization_id sit in the same GIN index. Both are trusted extensions: the database's
-- owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- A set of 0 to 20 tags, each 1 to 32 characters, lower-case, trimmed, without control
-- characters, no tag twice (internal/customer.normalizeTags).
-- +goose StatementBegin
CREATE FUNCTION customer_tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cardinality(tags) <= 20
       AND (cardinality(tags) = 0 OR array_ndims(tags) = 1)
       AND NOT EXISTS (
           SELECT 1 FROM unnest(tags) AS t
           WHERE t IS NULL OR length(t) NOT BETWEEN 1 AND 32 OR t <> lower(t) OR t <> btrim(t)
              OR t ~ '[\x01-\x1f\x7f-\x9f]')
       AND (SELECT count(DISTINCT t) FROM unnest(tags) AS t) = cardinality(tags)
$$;
-- +goose StatementEnd

CREATE TABLE customers (
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    name            text        NOT NULL CONSTRAINT customers_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 200 AND name !~ '[\x01-\x1f\x7f-\x9f]'),
    -- Normalized like users.email (account.NormalizeEmail): lower-case, trimmed.
    email           text        CONSTRAINT customers_email_check
        CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%' AND length(email) <= 254 AND email !~ '[\x01-\x1f\x7f-\x9f]'),
    -- Digits, spaces and + ( ) . / - only, an optional leading +, 3 to 32 characters,
    -- at least 3 of them digits: "+41 44 668 18 00", "(555) 010-2000".
    phone           text        CONSTRAINT customers_phone_check
        CHECK (phone ~ '^\+?[0-9 ()./-]{3,32}$' AND phone = btrim(phone)
               AND length(regexp_replace(phone, '[^0-9]', '', 'g')) >= 3),
    company         text        CONSTRAINT customers_company_check
        CHECK (company = btrim(company) AND length(company) BETWEEN 1 AND 200 AND company !~ '[\x01-\x1f\x7f-\x9f]'),
    tags            text[]      NOT NULL DEFAULT '{}' CONSTRAINT customers_tags_check CHECK (customer_tags_valid(tags)),
    status          text        NOT NULL DEFAULT 'LEAD' CONSTRAINT customers_status_check
        CHECK (status IN ('LEAD', 'ACTIVE', 'INACTIVE')),
    -- A member of the same organization; cleared (only this column) when the membership ends.
    assignee_id     uuid,
    -- Who created the customer: a user, not a membership, so that the record outlives the
    -- creator's membership (a creator who leaves neither blocks nor deletes customers).
    created_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    archived_at     timestamptz,
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT customers_assignee_fkey FOREIGN KEY (organization_id, assignee_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (assignee_id)
);
-- One customer per email and organization, whatever the case (emails are stored
-- lower-case already; lower() keeps the rule if that ever changes).
CREATE UNIQUE INDEX customers_org_email_key ON customers (organization_id, lower(email)) WHERE email IS NOT NULL;
-- Foreign keys: the assignee filter and the membership deletion's SET NULL; a user's deletion.
CREATE INDEX customers_assignee_idx ON customers (organization_id, assignee_id);
CREATE INDEX customers_created_by_idx ON customers (created_by);
-- Keyset orderings (internal/customer.Store.Page), each scoped by organization_id with the
-- id as tie-breaker; a descending list scans the same index backwards. NAME orders by
-- lower(name), then name, in byte order, whatever the database's collation.
CREATE INDEX customers_name_page_idx ON customers (organization_id, lower(name) COLLATE "C", name COLLATE "C", id);
CREATE INDEX customers_created_page_idx ON customers (organization_id, created_at, id);
CREATE INDEX customers_updated_page_idx ON customers (organization_id, updated_at, id);
-- Search: one trigram GIN index over name, email and company, with organization_id as a
-- btree_gin key of the same index. A query `organization_id = $1 AND search ILIKE '%term%'`
-- then reads the term's trigram posting lists intersected with the organization's: its cost
-- follows the matches in that organization, not the matches in every organization of the
-- table (a plain trigram index would visit, then filter out, every other tenant's matching
-- rows). The expression must stay identical to customerSearchExpr in internal/customer/store.go.
CREATE INDEX customers_search_idx ON customers USING gin
    (organization_id, (name || ' ' || coalesce(email, '') || ' ' || coalesce(company, '')) gin_trgm_ops);
-- The tag filter (tags @> ARRAY[tag]) in the same way.
CREATE INDEX customers_tags_idx ON customers USING gin (organization_id, tags);

CREATE TABLE customer_notes (
    organization_id uuid        NOT NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    customer_id     uuid        NOT NULL,
    -- The writer: a user (see customers.created_by).
    author_id       uuid        REFERENCES users (id) ON DELETE SET NULL,
    body            text        NOT NULL CONSTRAINT customer_notes_body_check
        CHECK (length(body) BETWEEN 1 AND 10000 AND btrim(body, E' \t\r\n') <> ''),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    CONSTRAINT customer_notes_customer_fkey FOREIGN KEY (organization_id, customer_id)
        REFERENCES customers (organization_id, id) ON DELETE CASCADE
);
-- The customer's timeline (newest first) and the foreign key.
CREATE INDEX customer_notes_page_idx ON customer_notes (organization_id, customer_id, created_at, id);
CREATE INDEX customer_notes_author_idx ON customer_notes (author_id);

-- +goose Down
DROP TABLE customer_notes;
DROP TABLE customers;
DROP FUNCTION customer_tags_valid(text[]);
-- Created by the Up above (IF NOT EXISTS): dropped with it, so that Down restores the schema.
DROP EXTENSION btree_gin;
DROP EXTENSION pg_trgm;
