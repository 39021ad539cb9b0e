package catalog

import (
	"context"
	"fmt"
	"regexp"
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

// Deps are what the service needs.
type Deps struct {
	DB   *sqlx.DB
	Gate *tenant.Gate
	// CountMovements, when set, counts a product's movements for the
	// totalCount of Product.movements (the request's loader: many products in
	// one query).
	CountMovements func(ctx context.Context, k Key) (int, error)
}

// Service holds the catalog rules. Reads are gated by the caller (the
// @hasRole directive: any member reads the catalog). Every mutation runs
// through the tenant gate (LockActor) and writes one audit event; one that
// fails or changes nothing writes none.
//
// Roles: ADMIN and OWNER manage products and their stock; MEMBER reads.
type Service struct {
	d     Deps
	store Store
}

// NewService returns the catalog service.
func NewService(d Deps) *Service { return &Service{d: d} }

var (
	errNotFound = apperr.New(apperr.NotFound, "product not found")
	skuRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$`)
)

// constraints are the violations a product write may meet, as clients see them.
var constraints = tenant.Constraints{
	skuKey:     {Code: apperr.Conflict, Field: "sku", Message: "another product of this organization has this SKU"},
	stockCheck: {Code: apperr.Conflict, Field: "delta", Message: "not enough stock"},
}

// --- reads ---

// Get returns org's product id (NOT_FOUND when org has none).
func (s *Service) Get(ctx context.Context, orgID, id uuid.UUID) (*Product, error) {
	p, err := s.store.Get(ctx, s.d.DB, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("get product: %w", err)
	}
	if p == nil {
		return nil, errNotFound
	}
	return p, nil
}

// List returns a page of org's products matching f, by name.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, f Filter, first *int, after *string) (*ProductConnection, error) {
	if f.Search != nil {
		q := strings.TrimSpace(*f.Search)
		if utf8.RuneCountInString(q) > MaxSearchLen || strings.IndexFunc(q, unicode.IsControl) >= 0 {
			return nil, apperr.Invalid("search", "search must be at most %d characters, without control characters", MaxSearchLen)
		}
		f.Search = &q
		if q == "" {
			f.Search = nil
		}
	}
	req, err := page.Parse[string](first, after, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Page(ctx, s.d.DB, orgID, f, req.After, req.Limit())
	if err != nil {
		return nil, fmt.Errorf("products page: %w", err)
	}
	conn := page.Build(req, rows, func(p *Product) page.Key[string] { return page.Key[string]{V: p.Name, ID: p.ID} },
		func(ctx context.Context) (int, error) { return s.store.Count(ctx, s.d.DB, orgID, f) })
	if f.Search != nil {
		// Capped like the customers' search (page.CountCap).
		conn.Capped(func(ctx context.Context, limit int) (int, error) {
			return s.store.CountUpTo(ctx, s.d.DB, orgID, f, limit)
		})
	}
	return conn, nil
}

// MovementsRequest is a ledger page of several products: all share First and After.
type MovementsRequest struct {
	Products []Key
	First    int
	After    *string
}

// MovementsPages returns a page of each product's stock ledger, newest first,
// with one query, and all the movements (to prefetch their actors). A
// connection's totalCount goes through Deps.CountMovements when set.
func (s *Service) MovementsPages(ctx context.Context, r MovementsRequest) (map[Key]*MovementConnection, []*Movement, error) {
	req, err := page.Parse[int64](&r.First, r.After, "")
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.store.MovementsPages(ctx, s.d.DB, r.Products, req.After, req.Limit())
	if err != nil {
		return nil, nil, fmt.Errorf("movements pages: %w", err)
	}
	out := page.Each(req, r.Products, rows, func(m *Movement) page.Key[int64] { return page.Key[int64]{V: m.Seq} },
		page.Counts[Key]{Loaded: s.d.CountMovements, Direct: s.MovementCounts}.Of)
	var all []*Movement
	for _, c := range out {
		all = append(all, c.Nodes()...)
	}
	return out, all, nil
}

// MovementCounts counts the movements of each product of keys, with one query.
func (s *Service) MovementCounts(ctx context.Context, keys []Key) (map[Key]int, error) {
	n, err := s.store.MovementCounts(ctx, s.d.DB, keys)
	if err != nil {
		return nil, fmt.Errorf("count movements: %w", err)
	}
	return n, nil
}

// ByKeys returns the products of keys that exist (each key names its
// organization), with one query: the products' loader.
func (s *Service) ByKeys(ctx context.Context, keys []Key) ([]*Product, error) {
	ps, err := s.store.ByKeys(ctx, s.d.DB, keys)
	if err != nil {
		return nil, fmt.Errorf("products by key: %w", err)
	}
	return ps, nil
}

// LockForSale locks org's products ids in id order, in the caller's
// transaction q, for an order to price and take stock from (the orders area,
// through its Catalog interface); the ids org has not are left out.
func (s *Service) LockForSale(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, ids []uuid.UUID) ([]*Product, error) {
	return s.store.ForSale(ctx, q, org, ids)
}

// --- mutations ---

// Create adds a product (ADMIN or above); an initial stock is its first
// movement. With key, a retry of the same creation returns the first one's
// product (tenant.Once).
func (s *Service) Create(ctx context.Context, actor auth.Viewer, orgID uuid.UUID, in CreateProductInput, key *string) (*Product, error) {
	asSent := in
	if err := normalizeCreate(&in); err != nil {
		return nil, err
	}
	return write(ctx, s, actor, orgID, func(t *tenant.Tx) (*Product, error) {
		return tenant.Once(ctx, t, key, "product.create", asSent, func() (*Product, error) {
			p, err := s.store.Insert(ctx, t, orgID, &in, actor.UserID, t.Now)
			if err != nil {
				return nil, constraints.Map(err, "")
			}
			if n := *in.InitialStock; n > 0 {
				note := "initial stock"
				if err := s.store.InsertMovement(ctx, t, &Movement{OrganizationID: orgID, ProductID: p.ID, Delta: n,
					Reason: ReasonAdjustment, Note: &note, ActorID: &actor.UserID, CreatedAt: t.Now}); err != nil {
					return nil, fmt.Errorf("initial stock: %w", err)
				}
				p.Stock = n
			}
			return p, t.Audit(ctx, "product.created", "product", p.ID.String(), map[string]any{"after": snapshot(p)})
		})
	})
}

// Update changes the fields patch sets (ADMIN or above). With
// expectedVersion, a product changed since that version is CONFLICT and
// nothing changes. An update that changes nothing writes no audit event.
func (s *Service) Update(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, patch Patch, expectedVersion *int) (*Product, error) {
	if err := normalizePatch(&patch); err != nil {
		return nil, err
	}
	return write(ctx, s, actor, orgID, func(t *tenant.Tx) (*Product, error) {
		return tenant.Update(ctx, t, s.rows(), id, expectedVersion, func(p *Product) { apply(p, patch) })
	})
}

// Archive takes a product out of the default list and out of sale (ADMIN or above).
func (s *Service) Archive(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Product, error) {
	return s.setArchived(ctx, actor, orgID, id, true)
}

// Restore brings an archived product back (ADMIN or above).
func (s *Service) Restore(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID) (*Product, error) {
	return s.setArchived(ctx, actor, orgID, id, false)
}

func (s *Service) setArchived(ctx context.Context, actor auth.Viewer, orgID, id uuid.UUID, archive bool) (*Product, error) {
	return write(ctx, s, actor, orgID, func(t *tenant.Tx) (*Product, error) {
		return tenant.SetArchived(ctx, t, s.rows(), id, archive, func(p *Product) map[string]any { return map[string]any{"sku": p.Sku} })
	})
}

// rows is how the kit edits products (tenant.Update, tenant.SetArchived).
func (s *Service) rows() tenant.Rows[Product] {
	return tenant.Rows[Product]{Kind: "product", Lock: s.store.ForUpdate, NotFound: errNotFound, Save: s.store.Update,
		Snapshot: snapshot, ArchivedAt: func(p *Product) **time.Time { return &p.ArchivedAt }, Constraints: constraints}
}

// AdjustStock moves a product's stock by delta (ADMIN or above), recording
// the movement with the reason given; a stock that would go below zero is
// CONFLICT on delta and nothing changes. With key, a retry of the same
// adjustment returns the first one's product and moves nothing again.
func (s *Service) AdjustStock(ctx context.Context, actor auth.Viewer, orgID, productID uuid.UUID, delta int, reason string, key *string) (*Product, error) {
	if delta == 0 || delta < -MaxDelta || delta > MaxDelta {
		return nil, apperr.Invalid("delta", "delta must be between -%d and %d, not 0", MaxDelta, MaxDelta)
	}
	note, err := validate.Name("reason", reason, MaxNoteLen)
	if err != nil {
		return nil, err
	}
	request := map[string]any{"productId": productID, "delta": delta, "reason": reason}
	return write(ctx, s, actor, orgID, func(t *tenant.Tx) (*Product, error) {
		return tenant.Once(ctx, t, key, "stock.adjust", request, func() (*Product, error) {
			p, err := tenant.LockRow(ctx, t, s.store.ForUpdate, productID, errNotFound)
			if err != nil {
				return nil, err
			}
			if !p.TrackInventory {
				return nil, apperr.New(apperr.Conflict, "the product tracks no inventory")
			}
			if p.Stock+delta < 0 {
				return nil, &apperr.Error{Code: apperr.Conflict, Field: "delta", Message: fmt.Sprintf("not enough stock: %d in stock", p.Stock)}
			}
			if err := s.store.InsertMovement(ctx, t, &Movement{OrganizationID: orgID, ProductID: p.ID, Delta: delta,
				Reason: ReasonAdjustment, Note: &note, ActorID: &actor.UserID, CreatedAt: t.Now}); err != nil {
				return nil, constraints.Map(err, "")
			}
			before := p.Stock
			p.Stock += delta // the row is locked: the ledger's trigger made the same sum
			return p, t.Audit(ctx, "stock.adjusted", "product", p.ID.String(),
				map[string]any{"delta": delta, "reason": note, "before": map[string]any{"stock": before}, "after": map[string]any{"stock": p.Stock}})
		})
	})
}

// --- helpers ---

// write runs fn through the tenant gate as an ADMIN's ordinary tenant write
// (LockActor: writers of one organization do not serialize).
func write[T any](ctx context.Context, s *Service, actor auth.Viewer, orgID uuid.UUID, fn func(t *tenant.Tx) (T, error)) (T, error) {
	return tenant.Do(ctx, s.d.Gate, actor.UserID, orgID, tenant.RoleAdmin, tenant.LockActor, fn)
}

func checkSku(raw string) (string, error) {
	sku := strings.TrimSpace(raw)
	if !skuRe.MatchString(sku) {
		return "", apperr.Invalid("sku", "a SKU is 1 to 64 letters, digits and . _ / -, starting with a letter or digit")
	}
	return sku, nil
}

func checkPrice(p int64) error {
	if p < 0 || p > MaxPrice {
		return apperr.Invalid("price", "a price is 0 to %d minor units", int64(MaxPrice))
	}
	return nil
}

// description checks a description (validate.Optional trimmed it and made
// blank none): at most MaxDescriptionLen characters, line breaks allowed.
func description(v string) (string, error) {
	if utf8.RuneCountInString(v) > MaxDescriptionLen || !utf8.ValidString(v) {
		return "", apperr.Invalid("description", "description must be at most %d characters", MaxDescriptionLen)
	}
	return v, nil
}

func normalizeCreate(in *CreateProductInput) error {
	var err error
	if in.Sku, err = checkSku(in.Sku); err != nil {
		return err
	}
	if in.Name, err = validate.Name("name", in.Name, MaxNameLen); err != nil {
		return err
	}
	if in.Description, err = validate.Optional(in.Description, description); err != nil {
		return err
	}
	if err := checkPrice(in.Price); err != nil {
		return err
	}
	if in.TrackInventory == nil {
		track := true
		in.TrackInventory = &track
	}
	if in.InitialStock == nil {
		zero := 0
		in.InitialStock = &zero
	}
	switch n := *in.InitialStock; {
	case n < 0 || n > MaxDelta:
		return apperr.Invalid("initialStock", "the initial stock is 0 to %d", MaxDelta)
	case n > 0 && !*in.TrackInventory:
		return apperr.Invalid("initialStock", "a product that tracks no inventory has no stock")
	}
	return nil
}

func normalizePatch(p *Patch) error {
	var err error
	if p.Sku != nil {
		var sku string
		if sku, err = checkSku(*p.Sku); err != nil {
			return err
		}
		p.Sku = &sku
	}
	if p.Name != nil {
		var n string
		if n, err = validate.Name("name", *p.Name, MaxNameLen); err != nil {
			return err
		}
		p.Name = &n
	}
	if p.Description.Set {
		if p.Description.Value, err = validate.Optional(p.Description.Value, description); err != nil {
			return err
		}
	}
	if p.Price != nil {
		if err := checkPrice(*p.Price); err != nil {
			return err
		}
	}
	return nil
}

func apply(p *Product, patch Patch) {
	if patch.Sku != nil {
		p.Sku = *patch.Sku
	}
	if patch.Name != nil {
		p.Name = *patch.Name
	}
	if patch.Description.Set {
		p.Description = patch.Description.Value
	}
	if patch.Price != nil {
		p.PriceAmount = *patch.Price
	}
}

// snapshot is a product's editable fields as the audit log records them.
func snapshot(p *Product) map[string]any {
	return map[string]any{"sku": p.Sku, "name": p.Name, "description": p.Description, "price": p.PriceAmount,
		"trackInventory": p.TrackInventory}
}
