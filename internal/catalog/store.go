package catalog

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/page"
)

// Store is the catalog's SQL. Every method takes the organization first and
// every query is scoped by it.
type Store struct{}

// Constraint names the service maps to field errors.
const (
	skuKey     = "products_org_sku_key"
	stockCheck = "products_stock_check"
	// productCols reads a product with its organization's currency (o).
	productCols = `p.organization_id, p.id, p.sku, p.name, p.description, p.price, o.currency,
	p.track_inventory, p.stock, p.created_by, p.created_at, p.updated_at, p.archived_at, p.version`
	movementCols = `m.organization_id, m.id, m.product_id, m.delta, m.reason, m.order_id, m.note, m.actor_id, m.created_at`
)

// productOrder is the catalog's order: by name, case-insensitively, then byte order, then id.
var productOrder = page.Order{Col: "p.name", ID: "p.id", Fold: true}

// movementOrder is a product's ledger, newest first.
var movementOrder = page.Order{Col: "m.id", Dir: page.Desc}

// Insert creates a product with no stock (the service records the initial
// stock as a movement).
func (Store) Insert(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, in *CreateProductInput, by uuid.UUID, now time.Time) (*Product, error) {
	return db.GetOrNil[Product](ctx, q, `
		WITH p AS (
			INSERT INTO products (organization_id, sku, name, description, price, track_inventory, created_by, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *)
		SELECT `+productCols+` FROM p JOIN organizations o ON o.id = p.organization_id`,
		org, in.Sku, in.Name, in.Description, in.Price, *in.TrackInventory, by, now)
}

// ForUpdate locks and returns org's product id; nil when org has none.
func (Store) ForUpdate(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Product, error) {
	return db.GetOrNil[Product](ctx, q, `SELECT `+productCols+` FROM products p JOIN organizations o ON o.id = p.organization_id
		WHERE p.organization_id = $1 AND p.id = $2 FOR UPDATE OF p`, org, id)
}

// Get returns org's product id; nil when org has none.
func (Store) Get(ctx context.Context, q sqlx.QueryerContext, org, id uuid.UUID) (*Product, error) {
	return db.GetOrNil[Product](ctx, q, `SELECT `+productCols+` FROM products p JOIN organizations o ON o.id = p.organization_id
		WHERE p.organization_id = $1 AND p.id = $2`, org, id)
}

// Update writes p's editable fields (as the service changed them), bumps the
// version and sets updated_at. The stock is the ledger's.
func (Store) Update(ctx context.Context, q sqlx.QueryerContext, p *Product, now time.Time) (*Product, error) {
	return db.GetOrNil[Product](ctx, q, `
		WITH p AS (
			UPDATE products SET sku = $3, name = $4, description = $5, price = $6, archived_at = $7,
				updated_at = $8, version = version + 1
			WHERE organization_id = $1 AND id = $2 RETURNING *)
		SELECT `+productCols+` FROM p JOIN organizations o ON o.id = p.organization_id`,
		p.OrganizationID, p.ID, p.Sku, p.Name, p.Description, p.PriceAmount, p.ArchivedAt, now)
}

// InsertMovement records a movement of org's product; the ledger's trigger
// applies it to the stock (products_stock_check refuses a stock below zero).
func (Store) InsertMovement(ctx context.Context, q sqlx.ExecerContext, m *Movement) error {
	_, err := q.ExecContext(ctx, `
		INSERT INTO inventory_movements (organization_id, product_id, delta, reason, order_id, note, actor_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.OrganizationID, m.ProductID, m.Delta, m.Reason, m.OrderID, m.Note, m.ActorID, m.CreatedAt)
	return err
}

// where is a product list's filter: the statement's text depends on which
// filters are present, the values are parameters.
func where(org uuid.UUID, f Filter) (string, []any) {
	return whereOrg(org, "$1", f)
}

// whereOrg is where with the organization's parameter written as db.OrgParam
// ("$1", or db.Unestimated's form of it).
func whereOrg(org uuid.UUID, orgParam string, f Filter) (string, []any) {
	cond, args := "p.organization_id = "+orgParam, []any{org}
	if !f.IncludeArchived {
		cond += " AND p.archived_at IS NULL"
	}
	if f.Search != nil {
		args = append(args, db.LikeContains(*f.Search))
		cond += " AND (p.name ILIKE $2 OR p.sku ILIKE $2)"
	}
	return cond, args
}

// Page returns up to limit of org's products matching f after cur, by name.
func (Store) Page(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, cur *page.Key[string], limit int) ([]*Product, error) {
	short := db.ShortTerm(f.Search)
	cond, args := whereOrg(org, db.OrgParam(f.Search), f)
	after, args := page.After(productOrder, cur, args)
	args = append(args, limit)
	hint := ""
	if f.Search != nil {
		hint = db.CustomPlan // see the customers' Page: a plan for each term
	}
	query := hint + `SELECT ` + productCols + `
		FROM products p JOIN organizations o ON o.id = p.organization_id
		WHERE ` + cond + after + ` ORDER BY ` + productOrder.By() + ` LIMIT $` + strconv.Itoa(len(args))
	if short {
		// As the customers' page: a term without a trigram takes the page's
		// keys from an index-only walk of products_name_page_idx (which
		// includes the SKU, migrations/00020), the organization
		// db.Unestimated, then the rows.
		query = hint + `SELECT ` + productCols + ` FROM (
			SELECT p.organization_id, p.id FROM products p
			WHERE ` + cond + after + ` ORDER BY ` + productOrder.By() + ` LIMIT $` + strconv.Itoa(len(args)) + `) k
		JOIN products p ON p.organization_id = k.organization_id AND p.id = k.id
		JOIN organizations o ON o.id = p.organization_id ORDER BY ` + productOrder.By()
	}
	var rows []*Product
	err := sqlx.SelectContext(ctx, q, &rows, query, args...)
	return rows, err
}

// Count counts org's products matching f (without a search).
func (Store) Count(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter) (int, error) {
	cond, args := where(org, f)
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT count(*) FROM products p WHERE `+cond, args...)
	return n, err
}

// CountUpTo counts org's products matching f, but at most limit of them (a
// search's capped totalCount: db.CountUpTo, planned for its term).
func (Store) CountUpTo(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, f Filter, limit int) (int, error) {
	cond, args := whereOrg(org, db.OrgParam(f.Search), f)
	by := ""
	if db.ShortTerm(f.Search) {
		by = productOrder.By() // as the customers' CountUpTo
	}
	return db.CountUpTo(ctx, q, `products p WHERE `+cond, by, limit, args...)
}

// MovementsPages returns up to limit movements (newest first, after cur) of
// each product of keys, with one query.
func (Store) MovementsPages(ctx context.Context, q sqlx.QueryerContext, keys []Key, cur *page.Key[int64], limit int) (map[Key][]*Movement, error) {
	orgs, ids := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Product })
	after, args := page.After(movementOrder, cur, []any{orgs, ids, limit})
	var rows []*Movement
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT p.* FROM unnest($1::uuid[], $2::uuid[]) AS k(org, id) CROSS JOIN LATERAL (
			SELECT `+movementCols+` FROM inventory_movements m
			WHERE m.organization_id = k.org AND m.product_id = k.id`+after+`
			ORDER BY `+movementOrder.By()+` LIMIT $3
		) p`, args...)
	if err != nil {
		return nil, err
	}
	out := make(map[Key][]*Movement, len(keys))
	for _, m := range rows {
		k := Key{Org: m.OrganizationID, Product: m.ProductID}
		out[k] = append(out[k], m)
	}
	return out, nil
}

// MovementCounts counts the movements of each product of keys, with one query.
func (Store) MovementCounts(ctx context.Context, q sqlx.QueryerContext, keys []Key) (map[Key]int, error) {
	orgs, ids := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Product })
	var rows []struct {
		Org uuid.UUID `db:"org"`
		ID  uuid.UUID `db:"id"`
		N   int       `db:"n"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT k.org, k.id, count(m.id) AS n FROM unnest($1::uuid[], $2::uuid[]) AS k(org, id)
		LEFT JOIN inventory_movements m ON m.organization_id = k.org AND m.product_id = k.id
		GROUP BY k.org, k.id`, orgs, ids)
	out := make(map[Key]int, len(rows))
	for _, r := range rows {
		out[Key{Org: r.Org, Product: r.ID}] = r.N
	}
	return out, err
}

// ByKeys returns the products of keys (each of its own organization) that
// exist, with one query.
func (Store) ByKeys(ctx context.Context, q sqlx.QueryerContext, keys []Key) ([]*Product, error) {
	orgs, ids := db.Pairs(keys, func(k Key) (uuid.UUID, uuid.UUID) { return k.Org, k.Product })
	var rows []*Product
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+productCols+`
		FROM unnest($1::uuid[], $2::uuid[]) AS k(org, id)
		JOIN products p ON p.organization_id = k.org AND p.id = k.id
		JOIN organizations o ON o.id = p.organization_id`, orgs, ids)
	return rows, err
}

// ForSale locks org's products ids FOR UPDATE, in id order (the lock order of
// every stock writer), and returns those org has.
func (Store) ForSale(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, ids []uuid.UUID) ([]*Product, error) {
	var rows []*Product
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+productCols+` FROM products p JOIN organizations o ON o.id = p.organization_id
		WHERE p.organization_id = $1 AND p.id = ANY ($2::uuid[]) ORDER BY p.id FOR UPDATE OF p`, org, pq.Array(ids))
	return rows, err
}
