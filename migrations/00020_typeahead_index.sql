-- Typeahead (issue 17): a search term of 1 or 2 characters has no trigram, so
-- customers_search_idx cannot narrow it; "C" or "Cu" in a search box matches most of an
-- organization's customers. Its page should walk the list's order and stop after one
-- page. That walk must read the search text of each row it passes: held in the ordering
-- index (INCLUDE), the walk is an index-only scan, cheaper in the planner's eyes than
-- reading and sorting every match whatever the statistics say about the organization
-- (a new organization that the statistics do not know yet is estimated at one row:
-- reading and sorting its 30,000 customers looked cheaper than walking the index, 40 ms
-- instead of 1). internal/customer.Store.Page reads the page's keys from this index,
-- then the 21 rows (docs/testing.md, "Benchmarks").
--
-- The same key as before (organization, NAME order, id), so every list by name keeps it;
-- archived_at is included for the default list's filter. The products' name order, whose
-- search (name or SKU, migrations/00017) has the same shape, likewise
-- (internal/catalog.Store.Page).

-- +goose Up
DROP INDEX customers_name_page_idx;
CREATE INDEX customers_name_page_idx ON customers (organization_id, lower(name) COLLATE "C", name COLLATE "C", id)
    INCLUDE (email, company, archived_at);
DROP INDEX products_name_page_idx;
CREATE INDEX products_name_page_idx ON products (organization_id, lower(name) COLLATE "C", name COLLATE "C", id)
    INCLUDE (sku, archived_at);

-- +goose Down
DROP INDEX customers_name_page_idx;
CREATE INDEX customers_name_page_idx ON customers (organization_id, lower(name) COLLATE "C", name COLLATE "C", id);
DROP INDEX products_name_page_idx;
CREATE INDEX products_name_page_idx ON products (organization_id, lower(name) COLLATE "C", name COLLATE "C", id);
