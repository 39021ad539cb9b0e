-- A customer's version goes up on every change (issue 9), including the changes no
-- service makes: the membership foreign key's ON DELETE SET NULL (assignee_id) when the
-- assignee leaves, or an operator's UPDATE. The service bumps the version itself
-- (internal/customer: version + 1, its clock's updated_at); any other update that
-- changes the row but not the version gets version + 1 and updated_at = now() here,
-- so that a client holding the old version gets CONFLICT on its next update instead of
-- overwriting a change it never saw. A version never goes down.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION customers_version_on_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version < OLD.version THEN
        RAISE EXCEPTION 'customers.version cannot go down (% to %)', OLD.version, NEW.version
            USING ERRCODE = 'check_violation', CONSTRAINT = 'customers_version_check';
    END IF;
    IF NEW.version = OLD.version AND NEW IS DISTINCT FROM OLD THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER customers_version_on_change BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_version_on_change();

-- +goose Down
DROP TRIGGER customers_version_on_change ON customers;
DROP FUNCTION customers_version_on_change();
