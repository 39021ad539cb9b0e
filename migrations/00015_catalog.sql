-- The catalog (internal/catalog, docs/api.md "Catalog"): products with a price and, when
-- they track inventory, a stock that only an append-only ledger of movements changes.
-- Every CHECK mirrors a rule of the service (which refuses first, with a field).

-- +goose Up
-- The organization's currency (ISO 4217; the service checks the code against its list),
-- in which its products are priced. Amounts are integer minor units everywhere.
ALTER TABLE organizations ADD COLUMN currency text NOT NULL DEFAULT 'USD'
    CONSTRAINT organizations_currency_check CHECK (currency ~ '^[A-Z]{3}$');

CREATE TABLE products (
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- ASCII letters, digits and . _ / -, starting with a letter or digit: unique per
    -- organization, case-insensitively (products_org_sku_key).
    sku             text        NOT NULL CONSTRAINT products_sku_check CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$'),
    name            text        NOT NULL CONSTRAINT products_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 200 AND name !~ '[\x01-\x1f\x7f-\x9f]'),
    description     text        CONSTRAINT products_description_check
        CHECK (description = btrim(description) AND length(description) BETWEEN 1 AND 5000),
    -- Minor units of the organization's currency; at most 10^12 (ten billion dollars).
    price           bigint      NOT NULL CONSTRAINT products_price_check CHECK (price BETWEEN 0 AND 1000000000000),
    -- Services and digital goods track no inventory: their stock stays 0.
    track_inventory boolean     NOT NULL DEFAULT true,
    -- Only the ledger changes it (inventory_movements_apply); never below zero.
    stock           integer     NOT NULL DEFAULT 0 CONSTRAINT products_stock_check CHECK (stock >= 0 AND (track_inventory OR stock = 0)),
    created_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    archived_at     timestamptz,
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    PRIMARY KEY (organization_id, id)
);
-- SKUs are ASCII: lower() means the same in every locale.
CREATE UNIQUE INDEX products_org_sku_key ON products (organization_id, lower(sku));
CREATE INDEX products_created_by_idx ON products (created_by);
-- The catalog's default order: by name, case-insensitively, then byte order, then id.
CREATE INDEX products_name_page_idx ON products (organization_id, lower(name) COLLATE "C", name COLLATE "C", id);

-- The stock ledger: a product's stock is the sum of its movements, always.
CREATE TABLE inventory_movements (
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    product_id      uuid        NOT NULL,
    delta           integer     NOT NULL CONSTRAINT inventory_movements_delta_check CHECK (delta <> 0 AND delta BETWEEN -1000000 AND 1000000),
    reason          text        NOT NULL CONSTRAINT inventory_movements_reason_check
        CHECK (reason IN ('ORDER', 'CANCEL', 'REFUND_RESTOCK', 'ADJUSTMENT')),
    -- The order that took or gave back the stock (a foreign key once orders exist).
    order_id        uuid,
    note            text        CONSTRAINT inventory_movements_note_check
        CHECK (note = btrim(note) AND length(note) BETWEEN 1 AND 500 AND note !~ '[\x01-\x1f\x7f-\x9f]'),
    actor_id        uuid        REFERENCES users (id),
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    CONSTRAINT inventory_movements_product_fkey FOREIGN KEY (organization_id, product_id)
        REFERENCES products (organization_id, id)
);
CREATE INDEX inventory_movements_product_idx ON inventory_movements (organization_id, product_id, id);
CREATE INDEX inventory_movements_actor_idx ON inventory_movements (actor_id);

-- A movement applies its delta to the product's stock in the same statement: the
-- product's row lock orders concurrent movements, and products_stock_check refuses the
-- one that would take the stock below zero (nothing of it remains).
-- +goose StatementBegin
CREATE FUNCTION inventory_movements_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products SET stock = stock + NEW.delta
    WHERE organization_id = NEW.organization_id AND id = NEW.product_id;
    RETURN NULL;
END $$;
-- The ledger is append-only, like the audit log.
CREATE FUNCTION inventory_movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'inventory_movements is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
-- A product's stock starts at 0 and changes only through a movement.
CREATE FUNCTION products_stock_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.stock <> 0 THEN
        RAISE EXCEPTION 'a product starts with no stock: record its stock as a movement'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'products_stock_ledger';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.stock IS DISTINCT FROM OLD.stock AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'stock changes only through inventory_movements'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'products_stock_ledger';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER inventory_movements_apply AFTER INSERT ON inventory_movements
    FOR EACH ROW EXECUTE FUNCTION inventory_movements_apply();
CREATE TRIGGER inventory_movements_no_update_delete BEFORE UPDATE OR DELETE ON inventory_movements
    FOR EACH ROW EXECUTE FUNCTION inventory_movements_append_only();
CREATE TRIGGER inventory_movements_no_truncate BEFORE TRUNCATE ON inventory_movements
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_movements_append_only();
CREATE TRIGGER products_stock_from_ledger BEFORE INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_stock_from_ledger();

-- +goose Down
DROP TABLE inventory_movements;
DROP TABLE products;
DROP FUNCTION products_stock_from_ledger();
DROP FUNCTION inventory_movements_append_only();
DROP FUNCTION inventory_movements_apply();
ALTER TABLE organizations DROP COLUMN currency;
