-- Organization quotas (docs/api.md, "Quotas"): what one organization may hold in the
-- shared tables. The limits are a row per organization (an operator changes them with
-- `tenantgraph org limits set`); the triggers below refuse, in the writing transaction,
-- any write that would take an organization past one, with SQLSTATE 23514, constraint
-- organization_quota, the limit's API name and number in DETAIL ("seats 25") and a
-- client-safe message: internal/platform/db maps it to QUOTA_EXCEEDED.
--
-- What each write waits on, so that a race cannot overfill an organization:
--   seats (members plus pending invitations): the organization row, which every
--     membership change locks already (tenant.LockOrganization);
--   customers, products: the organization's usage row of that quota (one per quota:
--     creating customers does not wait on products, orders or membership changes);
--   orders per day: the same, next to order_numbers' row that orders lock already;
--   notes per customer: the customer's row.

-- +goose Up
CREATE TABLE organization_limits (
    organization_id    uuid        PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    seats              integer     NOT NULL DEFAULT 250    CHECK (seats BETWEEN 1 AND 1000000),
    customers          integer     NOT NULL DEFAULT 250000 CHECK (customers BETWEEN 0 AND 100000000),
    notes_per_customer integer     NOT NULL DEFAULT 1000   CHECK (notes_per_customer BETWEEN 0 AND 1000000),
    products           integer     NOT NULL DEFAULT 50000  CHECK (products BETWEEN 0 AND 100000000),
    orders_per_day     integer     NOT NULL DEFAULT 50000  CHECK (orders_per_day BETWEEN 0 AND 100000000),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A new organization gets its row, with the defaults, at its first check: its owner's
-- membership, in the transaction that creates it (organization_quota_check).
INSERT INTO organization_limits (organization_id) SELECT id FROM organizations;

-- Counted usage: active (not archived) customers and products, and the orders placed
-- on the organization's current local day (period).
CREATE TABLE organization_usage (
    organization_id uuid   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    quota           text   NOT NULL CHECK (quota IN ('customers', 'products', 'ordersPerDay')),
    period          date   CHECK ((quota = 'ordersPerDay') = (period IS NOT NULL)),
    used            bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (organization_id, quota)
);
INSERT INTO organization_usage (organization_id, quota, used)
SELECT organization_id, 'customers', count(*) FROM customers WHERE archived_at IS NULL GROUP BY 1;
INSERT INTO organization_usage (organization_id, quota, used)
SELECT organization_id, 'products', count(*) FROM products WHERE archived_at IS NULL GROUP BY 1;

-- +goose StatementBegin
-- The organization's limit named quota (its API name).
CREATE FUNCTION organization_limit(o uuid, q text) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT CASE q WHEN 'seats' THEN l.seats WHEN 'customers' THEN l.customers
        WHEN 'notesPerCustomer' THEN l.notes_per_customer WHEN 'products' THEN l.products
        WHEN 'ordersPerDay' THEN l.orders_per_day END
    FROM organization_limits l WHERE l.organization_id = o
$$;

-- Refuses a write that takes organization o to n > its limit q; what names the unit. A
-- new organization has no limits row yet: it gets its defaults here.
CREATE FUNCTION organization_quota_check(o uuid, q text, n bigint, what text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cap integer := organization_limit(o, q);
BEGIN
    IF cap IS NULL THEN
        INSERT INTO organization_limits (organization_id) VALUES (o) ON CONFLICT DO NOTHING;
        cap := organization_limit(o, q);
    END IF;
    IF n > cap THEN
        RAISE EXCEPTION 'this organization has reached its limit of % %', cap, what
            USING ERRCODE = 'check_violation', CONSTRAINT = 'organization_quota', DETAIL = q || ' ' || cap;
    END IF;
END $$;

-- Adds n to organization o's usage of quota q in period p (a new period starts again
-- from n), and refuses it past the limit when n > 0. The usage row stays locked until
-- commit: the next writer of this quota in o waits, then counts on from this one.
CREATE FUNCTION organization_usage_add(o uuid, q text, p date, n bigint, what text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    IF n < 0 THEN -- (an INSERT ... ON CONFLICT would check its negative row before the conflict)
        UPDATE organization_usage u SET used = u.used + n WHERE u.organization_id = o AND u.quota = q;
        RETURN;
    END IF;
    INSERT INTO organization_usage AS u (organization_id, quota, period, used) VALUES (o, q, p, n)
    ON CONFLICT (organization_id, quota) DO UPDATE
        SET used = CASE WHEN u.period IS NOT DISTINCT FROM excluded.period THEN u.used + excluded.used ELSE excluded.used END,
            period = excluded.period
    RETURNING u.used INTO total;
    PERFORM organization_quota_check(o, q, total, what);
END $$;

-- Customers and products: rows inserted not archived count (a statement-level trigger:
-- an import of 1,000 rows is one update), and archiving or restoring one counts -1/+1.
CREATE FUNCTION quota_rows_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT organization_id, count(*) AS n FROM new_rows WHERE archived_at IS NULL GROUP BY 1 ORDER BY 1 LOOP
        PERFORM organization_usage_add(r.organization_id, TG_ARGV[0], NULL, r.n, TG_ARGV[1]);
    END LOOP;
    RETURN NULL;
END $$;
CREATE FUNCTION quota_row_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM organization_usage_add(NEW.organization_id, TG_ARGV[0], NULL,
        CASE WHEN NEW.archived_at IS NULL THEN 1 ELSE -1 END, TG_ARGV[1]);
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER customers_quota AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION quota_rows_inserted('customers', 'active customers');
CREATE TRIGGER customers_quota_archived AFTER UPDATE OF archived_at ON customers
    FOR EACH ROW WHEN ((OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
    EXECUTE FUNCTION quota_row_archived('customers', 'active customers');
CREATE TRIGGER products_quota AFTER INSERT ON products REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION quota_rows_inserted('products', 'active products');
CREATE TRIGGER products_quota_archived AFTER UPDATE OF archived_at ON products
    FOR EACH ROW WHEN ((OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
    EXECUTE FUNCTION quota_row_archived('products', 'active products');

-- +goose StatementBegin
-- Orders per day: counted on the organization's local day of created_at.
CREATE FUNCTION orders_quota() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    SELECT o.time_zone INTO tz FROM organizations o WHERE o.id = NEW.organization_id;
    PERFORM organization_usage_add(NEW.organization_id, 'ordersPerDay', (NEW.created_at AT TIME ZONE tz)::date, 1, 'orders a day');
    RETURN NULL;
END $$;

-- Notes per customer: counted under the customer's row lock (FOR NO KEY UPDATE: an
-- order for the customer, which takes FOR KEY SHARE, does not wait).
CREATE FUNCTION customer_notes_quota() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM 1 FROM customers c WHERE c.organization_id = NEW.organization_id AND c.id = NEW.customer_id FOR NO KEY UPDATE;
    SELECT count(*) INTO n FROM customer_notes WHERE organization_id = NEW.organization_id AND customer_id = NEW.customer_id;
    PERFORM organization_quota_check(NEW.organization_id, 'notesPerCustomer', n + 1, 'notes on one customer');
    RETURN NEW;
END $$;

-- Seats: members plus pending, unexpired invitations, under the organization row's
-- lock. A new member takes a seat when the members alone still fit (its own pending
-- invitation was counted already, and an accepted invitation must not overfill the
-- organization when its limit was lowered meanwhile); an invitation takes one when it
-- becomes pending (sent, or resent after it expired), counted at its updated_at (the
-- application's clock, which wrote it).
CREATE FUNCTION organization_seats(o uuid, at timestamptz, invitation uuid) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM organization_members m WHERE m.organization_id = o)
         + (SELECT count(*) FROM invitations i WHERE i.organization_id = o AND i.status = 'PENDING'
            AND i.expires_at > at AND i.id IS DISTINCT FROM invitation)
$$;
CREATE FUNCTION organization_members_seats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM 1 FROM organizations o WHERE o.id = NEW.organization_id FOR NO KEY UPDATE;
    SELECT count(*) INTO n FROM organization_members m WHERE m.organization_id = NEW.organization_id;
    PERFORM organization_quota_check(NEW.organization_id, 'seats', n + 1, 'seats');
    RETURN NEW;
END $$;
CREATE FUNCTION invitations_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'PENDING' OR NEW.expires_at <= NEW.updated_at
       OR (TG_OP = 'UPDATE' AND OLD.status = 'PENDING' AND OLD.expires_at > NEW.updated_at) THEN
        RETURN NEW; -- takes no seat, or holds the one it had
    END IF;
    PERFORM 1 FROM organizations o WHERE o.id = NEW.organization_id FOR NO KEY UPDATE;
    PERFORM organization_quota_check(NEW.organization_id, 'seats',
        organization_seats(NEW.organization_id, NEW.updated_at, NEW.id) + 1, 'seats');
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER orders_quota AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_quota();
CREATE TRIGGER customer_notes_quota BEFORE INSERT ON customer_notes FOR EACH ROW EXECUTE FUNCTION customer_notes_quota();
CREATE TRIGGER organization_members_seats BEFORE INSERT ON organization_members
    FOR EACH ROW EXECUTE FUNCTION organization_members_seats();
CREATE TRIGGER invitations_seats BEFORE INSERT OR UPDATE ON invitations
    FOR EACH ROW EXECUTE FUNCTION invitations_seats();

-- +goose Down
DROP TRIGGER invitations_seats ON invitations;
DROP TRIGGER organization_members_seats ON organization_members;
DROP TRIGGER customer_notes_quota ON customer_notes;
DROP TRIGGER orders_quota ON orders;
DROP TRIGGER products_quota_archived ON products;
DROP TRIGGER products_quota ON products;
DROP TRIGGER customers_quota_archived ON customers;
DROP TRIGGER customers_quota ON customers;
DROP FUNCTION invitations_seats();
DROP FUNCTION organization_members_seats();
DROP FUNCTION organization_seats(uuid, timestamptz, uuid);
DROP FUNCTION customer_notes_quota();
DROP FUNCTION orders_quota();
DROP FUNCTION quota_row_archived();
DROP FUNCTION quota_rows_inserted();
DROP FUNCTION organization_usage_add(uuid, text, date, bigint, text);
DROP FUNCTION organization_quota_check(uuid, text, bigint, text);
DROP FUNCTION organization_limit(uuid, text);
DROP TABLE organization_usage;
DROP TABLE organization_limits;
