package app

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/catalog"
	"tenantgraph/internal/sales"
)

// forSale is the catalog as the orders area sees it (sales.Catalog): the two
// areas do not import each other.
type forSale struct{ c *catalog.Service }

func (f forSale) LockForSale(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, ids []uuid.UUID) ([]sales.Item, error) {
	ps, err := f.c.LockForSale(ctx, q, org, ids)
	items := make([]sales.Item, len(ps))
	for i, p := range ps {
		items[i] = sales.Item{ID: p.ID, Sku: p.Sku, Name: p.Name, Price: p.PriceAmount, Currency: p.Currency,
			TrackInventory: p.TrackInventory, Stock: p.Stock, Archived: p.ArchivedAt != nil}
	}
	return items, err
}
