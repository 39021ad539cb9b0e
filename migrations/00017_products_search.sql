-- products(search:) matches part of the name or the SKU (ILIKE '%term%'): a trigram index
-- of both, led by the organization (btree_gin, migrations/00008), serves it as it serves the
-- customers' search. Without it every search read all of the organization's products
-- (68-116 ms at 100,000; docs/testing.md). A term of 1 or 2 characters has no trigram: it
-- still reads them all (at most what one page of the name order walks, plus the count).

-- +goose Up
CREATE INDEX products_search_idx ON products USING gin (organization_id, name gin_trgm_ops, sku gin_trgm_ops);

-- +goose Down
DROP INDEX products_search_idx;
