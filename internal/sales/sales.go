// Package sales owns an organization's orders: what its customers bought from
// its catalog, at the catalog's prices of that moment, with the stock each
// order took, and the sales figures of its dashboard (docs/api.md, "Orders").
// The rules that bind money and stock live in the database as well
// (migrations/00016_orders.sql): an order line takes its product's stock as it
// is written, a cancelled order gives it back, the status moves only along the
// legal transitions, and the daily roll-up changes with the order it counts.
package sales

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/money"
	"tenantgraph/internal/platform/page"
)

// Limits of the input rules; the migration's CHECKs mirror them.
const (
	MaxLines       = 100
	MaxQuantity    = 10_000
	MaxNoteLen     = 500
	MaxSummaryDays = 366
	TopProducts    = 5
)

// Status is where an order stands.
type Status string

const (
	StatusPending   Status = "PENDING"
	StatusPaid      Status = "PAID"
	StatusFulfilled Status = "FULFILLED"
	StatusCancelled Status = "CANCELLED"
	StatusRefunded  Status = "REFUNDED"
)

// from are the statuses each status may be reached from (the database's
// orders_status trigger holds the same rule).
var from = map[Status][]Status{
	StatusPaid:      {StatusPending},
	StatusFulfilled: {StatusPaid},
	StatusCancelled: {StatusPending, StatusPaid},
	StatusRefunded:  {StatusPaid, StatusFulfilled},
}

// counted are the statuses whose orders count as sales (revenue, lifetime value).
func (s Status) counted() bool { return s == StatusPaid || s == StatusFulfilled }

// previous is the status the order had before its last transition, read from
// its transitions' times (each set exactly when the order went through it).
func (o *Order) previous() Status {
	switch {
	case o.Status == StatusPaid, o.Status == StatusCancelled && o.PaidAt == nil:
		return StatusPending
	case o.Status == StatusRefunded && o.FulfilledAt != nil:
		return StatusFulfilled
	case o.Status == StatusPending:
		return ""
	}
	return StatusPaid // FULFILLED, CANCELLED after payment, REFUNDED before fulfilment
}

// Order is a sale to a customer.
type Order struct {
	OrganizationID uuid.UUID  `db:"organization_id"`
	ID             uuid.UUID  `db:"id"`
	Number         int64      `db:"number"`
	CustomerID     uuid.UUID  `db:"customer_id"`
	Status         Status     `db:"status"`
	Currency       string     `db:"currency"`
	SubtotalAmount int64      `db:"subtotal"`
	TotalAmount    int64      `db:"total"`
	Note           *string    `db:"note"`
	Restocked      bool       `db:"restocked"`
	CreatedByID    *uuid.UUID `db:"created_by"`
	CreatedAt      time.Time  `db:"created_at"`
	PaidAt         *time.Time `db:"paid_at"`
	FulfilledAt    *time.Time `db:"fulfilled_at"`
	CancelledAt    *time.Time `db:"cancelled_at"`
	RefundedAt     *time.Time `db:"refunded_at"`
	Lines          Lines      `db:"lines"`
}

// Subtotal is the sum of the lines.
func (o *Order) Subtotal() money.Money {
	return money.Money{Amount: o.SubtotalAmount, Currency: o.Currency}
}

// Total is what the customer pays: the subtotal, until taxes and discounts exist.
func (o *Order) Total() money.Money { return money.Money{Amount: o.TotalAmount, Currency: o.Currency} }

// Line is one product of an order, as it was sold.
type Line struct {
	OrganizationID  uuid.UUID `json:"organization_id"`
	LineNo          int       `json:"line_no"`
	ProductID       uuid.UUID `json:"product_id"`
	Sku             string    `json:"sku"`
	Name            string    `json:"name"`
	UnitPriceAmount int64     `json:"unit_price"`
	Quantity        int       `json:"quantity"`
	LineTotalAmount int64     `json:"line_total"`
	Currency        string    `json:"currency"`
}

// UnitPrice is the product's price when the order was placed.
func (l *Line) UnitPrice() money.Money {
	return money.Money{Amount: l.UnitPriceAmount, Currency: l.Currency}
}

// LineTotal is the unit price times the quantity.
func (l *Line) LineTotal() money.Money {
	return money.Money{Amount: l.LineTotalAmount, Currency: l.Currency}
}

// Lines are an order's lines by number, read with the order (a JSON array of
// order_lines rows).
type Lines []*Line

// Scan reads the JSON array the store selects.
func (ls *Lines) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*ls = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("order lines: cannot scan %T", src)
	}
	return json.Unmarshal(b, (*[]*Line)(ls))
}

// LineInput is one line of an order to create.
type LineInput struct {
	ProductID uuid.UUID `json:"productId"`
	Quantity  int       `json:"quantity"`
}

// CreateOrderInput is the order form: prices come from the catalog, never from it.
type CreateOrderInput struct {
	CustomerID uuid.UUID    `json:"customerId"`
	Lines      []*LineInput `json:"lines"`
	Note       *string      `json:"note"`
}

// Filter narrows an order list.
type Filter struct {
	Status       *Status
	CustomerID   *uuid.UUID
	PlacedAfter  *time.Time // inclusive
	PlacedBefore *time.Time // exclusive
}

// CustomerKey names one customer of one organization.
type CustomerKey struct {
	Org      uuid.UUID
	Customer uuid.UUID
}

// Item is a product as an order needs it, locked for the order's transaction.
type Item struct {
	ID             uuid.UUID
	Sku            string
	Name           string
	Price          int64
	Currency       string
	TrackInventory bool
	Stock          int
	Archived       bool
}

// Summary is an organization's sales over whole local days: the orders placed
// on them that count as sales (PAID or FULFILLED).
type Summary struct {
	From, To      time.Time // the first and the last day (midnight, in the time zone)
	TimeZone      string
	Currency      string
	Orders        int
	RevenueAmount int64
	Days          []*Day
	TopProducts   []*ProductSales
}

// Money is amount in the summary's currency.
func (s *Summary) Money(amount int64) money.Money {
	return money.Money{Amount: amount, Currency: s.Currency}
}

// Revenue is the total of the orders counted.
func (s *Summary) Revenue() money.Money { return s.Money(s.RevenueAmount) }

// AverageOrderValue is the revenue per order, rounded down (0 without orders).
func (s *Summary) AverageOrderValue() money.Money {
	if s.Orders == 0 {
		return s.Money(0)
	}
	return s.Money(s.RevenueAmount / int64(s.Orders))
}

// Day is one local day of a summary.
type Day struct {
	Date          time.Time `db:"day"`
	Orders        int       `db:"orders"`
	RevenueAmount int64     `db:"revenue"`
	Currency      string    `db:"-"`
}

// Revenue is the total of the day's orders counted.
func (d *Day) Revenue() money.Money {
	return money.Money{Amount: d.RevenueAmount, Currency: d.Currency}
}

// ProductSales is one product's sales in a summary.
type ProductSales struct {
	OrganizationID uuid.UUID `db:"organization_id"`
	ProductID      uuid.UUID `db:"product_id"`
	Sku            string    `db:"sku"`
	Name           string    `db:"name"`
	Quantity       int       `db:"quantity"`
	RevenueAmount  int64     `db:"revenue"`
	Currency       string    `db:"-"`
}

// Revenue is the total of the product's lines counted.
func (p *ProductSales) Revenue() money.Money {
	return money.Money{Amount: p.RevenueAmount, Currency: p.Currency}
}

// Connections of the area's lists, built by the one connection builder.
type (
	OrderConnection = page.Connection[*Order]
	OrderEdge       = page.Edge[*Order]
)
