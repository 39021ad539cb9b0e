-- The name CHECKs of users and organizations refused '[[:cntrl:]]', a class PostgreSQL
-- takes from the database's LC_CTYPE: in the C locale of our clusters it is C0 and DEL (and
-- C1), but a glibc UTF-8 locale may add characters such as U+2028 and U+2029, which the
-- service (Go's unicode.IsControl) lets through, so such a name would reach the database
-- and fail there as an internal error. The ranges below are the service's, in every locale,
-- as customers' and the email CHECKs already were (migrations/catalog_test.go keeps every
-- CHECK free of locale classes).

-- +goose Up
ALTER TABLE users DROP CONSTRAINT users_name_check,
    ADD CONSTRAINT users_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 100 AND name !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE organizations DROP CONSTRAINT organizations_name_check,
    ADD CONSTRAINT organizations_name_check
        CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100 AND name !~ '[\x01-\x1f\x7f-\x9f]');

-- +goose Down
ALTER TABLE organizations DROP CONSTRAINT organizations_name_check,
    ADD CONSTRAINT organizations_name_check
        CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]');
ALTER TABLE users DROP CONSTRAINT users_name_check,
    ADD CONSTRAINT users_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]');
