-- CHECKs that mean the same in every locale (migrations/catalog_test.go keeps them so).
--
-- The name CHECKs of users and organizations refused '[[:cntrl:]]', a class PostgreSQL
-- takes from the database's LC_CTYPE: in the C locale of our clusters it is C0 and DEL (and
-- C1), but a glibc UTF-8 locale may add characters such as U+2028 and U+2029, which the
-- service (Go's unicode.IsControl) lets through, so such a name would reach the database
-- and fail there as an internal error. The ranges below are the service's, in every locale,
-- as customers' and the email CHECKs already were.
--
-- The email and tag CHECKs compare with lower(), which also follows LC_CTYPE (ASCII only in
-- the C locale, Unicode rules in a glibc one). The service lower-cases with Go's Unicode
-- tables first; under COLLATE "C" the database checks the ASCII letters, the same in every
-- locale, and can never disagree with Go about another alphabet.

-- +goose Up
ALTER TABLE users DROP CONSTRAINT users_name_check,
    ADD CONSTRAINT users_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 100 AND name !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE organizations DROP CONSTRAINT organizations_name_check,
    ADD CONSTRAINT organizations_name_check
        CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100 AND name !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE users DROP CONSTRAINT users_email_check,
    ADD CONSTRAINT users_email_check
        CHECK (email = lower(btrim(email) COLLATE "C") AND email LIKE '%_@_%' AND length(email) <= 254);
ALTER TABLE invitations DROP CONSTRAINT invitations_email_check,
    ADD CONSTRAINT invitations_email_check
        CHECK (email = lower(btrim(email) COLLATE "C") AND email LIKE '%_@_%');
ALTER TABLE customers DROP CONSTRAINT customers_email_check,
    ADD CONSTRAINT customers_email_check
        CHECK (email = lower(btrim(email) COLLATE "C") AND email LIKE '%_@_%' AND length(email) <= 254
               AND email !~ '[\x01-\x1f\x7f-\x9f]');
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION customer_tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cardinality(tags) <= 20
       AND (cardinality(tags) = 0 OR array_ndims(tags) = 1)
       AND NOT EXISTS (
           SELECT 1 FROM unnest(tags) AS t
           WHERE t IS NULL OR length(t) NOT BETWEEN 1 AND 32 OR t <> lower(t COLLATE "C") OR t <> btrim(t)
              OR t ~ '[\x01-\x1f\x7f-\x9f]')
       AND (SELECT count(DISTINCT t) FROM unnest(tags) AS t) = cardinality(tags)
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION customer_tags_valid(tags text[]) RETURNS boolean
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
ALTER TABLE customers DROP CONSTRAINT customers_email_check,
    ADD CONSTRAINT customers_email_check
        CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%' AND length(email) <= 254 AND email !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE invitations DROP CONSTRAINT invitations_email_check,
    ADD CONSTRAINT invitations_email_check CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%');
ALTER TABLE users DROP CONSTRAINT users_email_check,
    ADD CONSTRAINT users_email_check CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%' AND length(email) <= 254);
ALTER TABLE organizations DROP CONSTRAINT organizations_name_check,
    ADD CONSTRAINT organizations_name_check
        CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]');
ALTER TABLE users DROP CONSTRAINT users_name_check,
    ADD CONSTRAINT users_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]');
