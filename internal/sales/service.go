package sales

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/page"
	"tenantgraph/internal/platform/validate"
	"tenantgraph/internal/tenant"
)

// Catalog is what an order needs from the catalog area (its service, through
// the wiring): org's products ids, locked FOR UPDATE in id order (every stock
// writer's lock order, so that two orders over the same products never
// deadlock), with their price, stock and state of now. Missing ids are left out.
type Catalog interface {
	LockForSale(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, ids []uuid.UUID) ([]Item, error)
}

// Deps are what the service needs.
type Deps struct {
	DB      *sqlx.DB
	Gate    *tenant.Gate
	Catalog Catalog
	// CountOrders, when set, counts a customer's orders for the totalCount of
	// Customer.orders (the request's loader: many customers in one query).
	CountOrders func(ctx context.Context, k CustomerKey) (int, error)
}

// Service holds the order rules. Reads are gated by the caller (the @hasRole
// directive: any member reads the orders). Every mutation runs through the
// tenant gate (LockActor: orders of one organization do not serialize on it)
// and writes one audit event; one that fails writes none.
//
// Roles: MEMBER creates orders; ADMIN and OWNER move them between statuses.
type Service struct {
	d     Deps
	store Store
}

// NewService returns the orders service.
func NewService(d Deps) *Service { return &Service{d: d} }

var errNotFound = apperr.New(apperr.NotFound, "order not found")

// constraints are the violations an order write may meet, as clients see them.
var constraints = tenant.Constraints{
	customerFkey:     {Code: apperr.NotFound, Field: "customerId", Message: "customer not found"},
	customerArchived: {Code: apperr.Conflict, Field: "customerId", Message: "the customer is archived: restore them to take an order"},
	currencyFkey:     {Code: apperr.Conflict, Field: "", Message: "the organization's currency changed meanwhile: try again"},
	stockCheck:       {Code: apperr.Conflict, Field: "lines", Message: "not enough stock"},
}

// --- reads ---

// Get returns org's order id (NOT_FOUND when org has none).
func (s *Service) Get(ctx context.Context, orgID, id uuid.UUID) (*Order, error) {
	return found(s.store.Get(ctx, s.d.DB, orgID, id))
}

// ByNumber returns org's order number (NOT_FOUND when org has none).
func (s *Service) ByNumber(ctx context.Context, orgID uuid.UUID, number int64) (*Order, error) {
	return found(s.store.ByNumber(ctx, s.d.DB, orgID, number))
}

func found(o *Order, err error) (*Order, error) {
	if err != nil {
		return nil, fmt.Errorf("get order: %w", err)
	}
	if o == nil {
		return nil, errNotFound
	}
	return o, nil
}

// List returns a page of org's orders matching f, newest first.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, f Filter, first *int, after *string) (*OrderConnection, error) {
	if f.PlacedAfter != nil && f.PlacedBefore != nil && !f.PlacedAfter.Before(*f.PlacedBefore) {
		return nil, apperr.Invalid("placedBefore", "placedBefore must be after placedAfter")
	}
	req, err := page.Parse[time.Time](first, after, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Page(ctx, s.d.DB, orgID, f, req.After, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("orders page: %w", err)
	}
	return page.Build(req, rows, orderKey, func(ctx context.Context) (int, error) { return s.store.Count(ctx, s.d.DB, orgID, f) }), nil
}

func orderKey(o *Order) page.Key[time.Time] { return page.Key[time.Time]{V: o.CreatedAt, ID: o.ID} }

// CustomersRequest asks for the first page of orders of many customers.
type CustomersRequest struct {
	Customers []CustomerKey
	First     int
}

// CustomerPages returns the first page of orders (newest first) of each
// customer of r, with one query; their totalCounts through Deps.CountOrders.
func (s *Service) CustomerPages(ctx context.Context, r CustomersRequest) (map[CustomerKey]*OrderConnection, error) {
	req, err := page.Parse[time.Time](&r.First, nil, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.store.CustomerPages(ctx, s.d.DB, r.Customers, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("customers' orders: %w", err)
	}
	return page.Each(req, r.Customers, rows, orderKey, page.Counts[CustomerKey]{Loaded: s.d.CountOrders, Direct: s.CustomerCounts}.Of), nil
}

// CustomerCounts counts the orders of each customer of keys, with one query.
func (s *Service) CustomerCounts(ctx context.Context, keys []CustomerKey) (map[CustomerKey]int, error) {
	n, err := s.store.CustomerCounts(ctx, s.d.DB, keys)
	if err != nil {
		return nil, fmt.Errorf("count customers' orders: %w", err)
	}
	return n, nil
}

// LifetimeValues returns what each customer of keys has bought (its orders
// that are PAID or FULFILLED; a refunded or cancelled order counts nothing),
// with one query.
func (s *Service) LifetimeValues(ctx context.Context, keys []CustomerKey) (map[CustomerKey]Value, error) {
	v, err := s.store.LifetimeValues(ctx, s.d.DB, keys)
	if err != nil {
		return nil, fmt.Errorf("lifetime values: %w", err)
	}
	return v, nil
}

// Summary returns org's sales over the local days (in its time zone) from
// from's through to's, at most MaxSummaryDays of them, in two statements
// (the daily roll-up kept with the orders).
func (s *Service) Summary(ctx context.Context, orgID uuid.UUID, from, to time.Time) (*Summary, error) {
	if to.Before(from) {
		return nil, apperr.Invalid("to", "to must not be before from")
	}
	if to.Sub(from) >= MaxSummaryDays*24*time.Hour {
		return nil, apperr.Invalid("to", "a summary covers at most %d days", MaxSummaryDays)
	}
	days, tz, currency, err := s.store.SummaryDays(ctx, s.d.DB, orgID, from, to)
	if err != nil {
		return nil, fmt.Errorf("summary days: %w", err)
	}
	if len(days) == 0 {
		return nil, apperr.New(apperr.NotFound, "organization not found")
	}
	if len(days) > MaxSummaryDays { // 366 x 24 hours can touch 367 local days
		return nil, apperr.Invalid("to", "a summary covers at most %d days", MaxSummaryDays)
	}
	sum := &Summary{From: days[0].Date, To: days[len(days)-1].Date, TimeZone: tz, Currency: currency, Days: days}
	for _, d := range days {
		d.Currency = currency
		sum.Orders += d.Orders
		sum.RevenueAmount += d.RevenueAmount
	}
	if sum.TopProducts, err = s.store.TopProducts(ctx, s.d.DB, orgID, from, to, TopProducts); err != nil {
		return nil, fmt.Errorf("top products: %w", err)
	}
	for _, p := range sum.TopProducts {
		p.Currency = currency
	}
	return sum, nil
}

// --- mutations ---

// Create places an order (MEMBER or above): the products are locked in id
// order, priced from the catalog, and each line that tracks inventory takes
// its stock; a line whose product lacks the stock is CONFLICT on its
// quantity and nothing changes. With key, a retry of the same request returns
// the first one's order (tenant.Once); the order keeps the key too, so that
// the same key and request find it after the kit's key expired.
func (s *Service) Create(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, in CreateOrderInput, key *string) (*Order, error) {
	asSent := in
	note, err := normalizeCreate(&in)
	if err != nil {
		return nil, err
	}
	hash, err := requestHash(asSent)
	if err != nil {
		return nil, err
	}
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, tenant.RoleMember, tenant.LockActor, func(t *tenant.Tx) (*Order, error) {
		return tenant.Once(ctx, t, key, "order.create", asSent, func() (*Order, error) {
			o, err := s.price(ctx, t, orgID, in)
			if err != nil {
				// (Not after a statement timeout: it aborted the transaction.)
				if e, refused := apperr.As(err); refused && e.Code != apperr.Timeout && key != nil {
					// A retry after the kit's key expired: the order the key made
					// comes before what the catalog says today.
					if prev, err := s.keyed(ctx, t, orgID, *key, hash); err != nil || prev != nil {
						return prev, err
					}
				}
				return nil, err
			}
			o.Note, o.Key, o.Hash, o.By, o.At = note, key, hash, actor.UserID, t.Now
			if key == nil {
				o.Hash = nil
			}
			order, err := s.store.Insert(ctx, t, orgID, o)
			if err != nil {
				return nil, constraints.Map(err, "input.")
			}
			if order == nil { // the key is on an order already
				prev, err := s.keyed(ctx, t, orgID, *key, hash)
				if err == nil && prev == nil {
					err = fmt.Errorf("order key %q: conflict without an order", *key)
				}
				return prev, err
			}
			return order, t.Audit(ctx, "order.created", "order", order.ID.String(), map[string]any{
				"number": order.Number, "customerId": order.CustomerID, "total": order.TotalAmount,
				"currency": order.Currency, "lines": len(order.Lines)})
		})
	})
}

// price locks the order's products and prices its lines.
func (s *Service) price(ctx context.Context, t *tenant.Tx, orgID uuid.UUID, in CreateOrderInput) (*NewOrder, error) {
	ids := make([]uuid.UUID, len(in.Lines))
	for i, l := range in.Lines {
		ids[i] = l.ProductID
	}
	items, err := s.d.Catalog.LockForSale(ctx, t, orgID, ids)
	if err != nil {
		return nil, fmt.Errorf("lock products: %w", err)
	}
	byID := make(map[uuid.UUID]*Item, len(items))
	for i := range items {
		byID[items[i].ID] = &items[i]
	}
	o := &NewOrder{CustomerID: in.CustomerID, Lines: make([]NewLine, len(in.Lines))}
	for i, l := range in.Lines {
		field := fmt.Sprintf("input.lines[%d].", i)
		it := byID[l.ProductID]
		switch {
		case it == nil:
			return nil, &apperr.Error{Code: apperr.NotFound, Field: field + "productId", Message: "product not found"}
		case it.Archived:
			return nil, &apperr.Error{Code: apperr.Conflict, Field: field + "productId", Message: fmt.Sprintf("%s is archived: it is not for sale", it.Sku)}
		case it.TrackInventory && it.Stock < l.Quantity:
			return nil, &apperr.Error{Code: apperr.Conflict, Field: field + "quantity",
				Message: fmt.Sprintf("not enough stock of %s: %d in stock, %d ordered", it.Sku, it.Stock, l.Quantity)}
		}
		o.Currency = it.Currency
		o.Lines[i] = NewLine{ProductID: it.ID, Sku: it.Sku, Name: it.Name, UnitPrice: it.Price, Quantity: l.Quantity, TrackInventory: it.TrackInventory}
		o.Subtotal += it.Price * int64(l.Quantity)
	}
	return o, nil
}

// keyed is the order an idempotency key created (nil when none did): the
// same request gets it, another one is CONFLICT.
func (s *Service) keyed(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, key string, hash []byte) (*Order, error) {
	o, h, err := s.store.ByKey(ctx, q, orgID, key)
	if err != nil {
		return nil, fmt.Errorf("order by key: %w", err)
	}
	if o == nil {
		return nil, nil
	}
	if !bytes.Equal(h, hash) {
		return nil, &apperr.Error{Code: apperr.Conflict, Field: "idempotencyKey",
			Message: "this idempotency key was used for another request: use a new key for a new request"}
	}
	return o, nil
}

// MarkPaid moves a PENDING order to PAID (ADMIN or above).
func (s *Service) MarkPaid(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Order, error) {
	return s.transition(ctx, actor, orgID, id, StatusPaid, false, nil)
}

// Fulfill moves a PAID order to FULFILLED (ADMIN or above).
func (s *Service) Fulfill(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Order, error) {
	return s.transition(ctx, actor, orgID, id, StatusFulfilled, false, nil)
}

// Cancel moves a PENDING or PAID order to CANCELLED (ADMIN or above); its
// stock goes back.
func (s *Service) Cancel(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Order, error) {
	return s.transition(ctx, actor, orgID, id, StatusCancelled, false, nil)
}

// Refund moves a PAID or FULFILLED order to REFUNDED (ADMIN or above); its
// stock goes back when restock is set. With key, a retry returns the first
// refund's order.
func (s *Service) Refund(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, restock bool, key *string) (*Order, error) {
	return s.transition(ctx, actor, orgID, id, StatusRefunded, restock, key)
}

// transition moves an order to status to from one of the statuses that may
// reach it, in one statement (the database's trigger gives the stock back and
// keeps the roll-up); an order in another status is CONFLICT.
func (s *Service) transition(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, to Status, restock bool, key *string) (*Order, error) {
	request := map[string]any{"id": id, "restock": restock}
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, tenant.RoleAdmin, tenant.LockActor, func(t *tenant.Tx) (*Order, error) {
		return tenant.Once(ctx, t, key, "order."+strings.ToLower(string(to)), request, func() (*Order, error) {
			o, err := s.store.Transition(ctx, t, orgID, id, to, from[to], restock, actor.UserID, t.Now)
			if err != nil {
				return nil, constraints.Map(err, "")
			}
			if o == nil {
				cur, err := found(s.store.Get(ctx, t, orgID, id))
				if err != nil {
					return nil, err
				}
				return nil, apperr.New(apperr.Conflict, "order %d is %s: it cannot become %s", cur.Number, cur.Status, to)
			}
			meta := map[string]any{"number": o.Number, "total": o.TotalAmount, "currency": o.Currency, "from": o.previous()}
			if to == StatusRefunded {
				meta["restocked"] = restock
			}
			return o, t.Audit(ctx, "order."+strings.ToLower(string(to)), "order", o.ID.String(), meta)
		})
	})
}

// --- helpers ---

func normalizeCreate(in *CreateOrderInput) (*string, error) {
	if len(in.Lines) < 1 || len(in.Lines) > MaxLines {
		return nil, apperr.Invalid("input.lines", "an order has 1 to %d lines", MaxLines)
	}
	seen := make(map[uuid.UUID]bool, len(in.Lines))
	for i, l := range in.Lines {
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return nil, apperr.Invalid(fmt.Sprintf("input.lines[%d].quantity", i), "a quantity is 1 to %d", MaxQuantity)
		}
		if seen[l.ProductID] {
			return nil, apperr.Invalid(fmt.Sprintf("input.lines[%d].productId", i), "each product appears on one line only")
		}
		seen[l.ProductID] = true
	}
	return validate.Optional(in.Note, func(v string) (string, error) {
		if utf8.RuneCountInString(v) > MaxNoteLen || strings.ContainsFunc(v, func(r rune) bool {
			return unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r'
		}) {
			return "", apperr.Invalid("input.note", "a note is at most %d characters, without control characters", MaxNoteLen)
		}
		return v, nil
	})
}

// requestHash is the hash an order keeps of the request that created it.
func requestHash(in CreateOrderInput) ([]byte, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("order request: %w", err)
	}
	h := sha256.Sum256(b)
	return h[:], nil
}
