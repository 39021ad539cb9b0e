// Package catalog owns an organization's products: their prices and, for those
// that track inventory, their stock, which only an append-only ledger of
// movements changes (docs/api.md, "Catalog"). The first area built from the
// area kit's checklist (docs/adding-an-area.md).
package catalog

import (
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/money"
	"tenantgraph/internal/platform/page"
)

// Limits of the input rules; the migration's CHECKs mirror them.
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 5_000
	MaxPrice          = 1_000_000_000_000 // minor units
	MaxDelta          = 1_000_000         // one stock movement
	MaxNoteLen        = 500
	MaxSearchLen      = 100
)

// Product is something an organization sells.
type Product struct {
	OrganizationID uuid.UUID  `db:"organization_id"`
	ID             uuid.UUID  `db:"id"`
	Sku            string     `db:"sku"`
	Name           string     `db:"name"`
	Description    *string    `db:"description"`
	PriceAmount    int64      `db:"price"`
	Currency       string     `db:"currency"` // the organization's
	TrackInventory bool       `db:"track_inventory"`
	Stock          int        `db:"stock"`
	CreatedByID    *uuid.UUID `db:"created_by"`
	CreatedAt      time.Time  `db:"created_at"`
	UpdatedAt      time.Time  `db:"updated_at"`
	ArchivedAt     *time.Time `db:"archived_at"`
	Version        int        `db:"version"`
}

// Price is the product's price in the organization's currency.
func (p *Product) Price() money.Money {
	return money.Money{Amount: p.PriceAmount, Currency: p.Currency}
}

// RowVersion is the product's version, for expectedVersion (tenant.LockVersioned).
func (p *Product) RowVersion() int { return p.Version }

// MovementReason is why a product's stock moved.
type MovementReason string

const (
	ReasonOrder         MovementReason = "ORDER"
	ReasonCancel        MovementReason = "CANCEL"
	ReasonRefundRestock MovementReason = "REFUND_RESTOCK"
	ReasonAdjustment    MovementReason = "ADJUSTMENT"
)

// Movement is one entry of a product's stock ledger.
type Movement struct {
	OrganizationID uuid.UUID      `db:"organization_id"`
	Seq            int64          `db:"id"`
	ProductID      uuid.UUID      `db:"product_id"`
	Delta          int            `db:"delta"`
	Reason         MovementReason `db:"reason"`
	OrderID        *uuid.UUID     `db:"order_id"`
	Note           *string        `db:"note"`
	ActorID        *uuid.UUID     `db:"actor_id"`
	CreatedAt      time.Time      `db:"created_at"`
}

// CreateProductInput is the creation form.
type CreateProductInput struct {
	Sku            string  `json:"sku"`
	Name           string  `json:"name"`
	Description    *string `json:"description"`
	Price          int64   `json:"price"`
	TrackInventory *bool   `json:"track_inventory"`
	// InitialStock, when above zero, is recorded as the first movement (ADJUSTMENT).
	InitialStock *int `json:"initial_stock"`
}

// Patch changes the given fields of a product only.
type Patch struct {
	Sku         *string
	Name        *string
	Description page.Opt[string]
	Price       *int64
}

// Filter narrows a product list.
type Filter struct {
	Search          *string
	IncludeArchived bool
}

// Key names one product of one organization (the products' loader).
type Key struct {
	Org     uuid.UUID
	Product uuid.UUID
}

// MovementsPageKey asks for the first page of a product's ledger.
type MovementsPageKey struct {
	Key
	First int
}

// Connections of the area's lists, built by the one connection builder.
type (
	ProductConnection  = page.Connection[*Product]
	ProductEdge        = page.Edge[*Product]
	MovementConnection = page.Connection[*Movement]
	MovementEdge       = page.Edge[*Movement]
)
