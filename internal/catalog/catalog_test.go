package catalog_test

import (
	"sync"
	"testing"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const productFields = `id sku name description price { amount currency formatted } trackInventory stock version archivedAt createdBy { id }`

type productOut struct {
	ID          uuid.UUID
	Sku, Name   string
	Description *string
	Price       struct {
		Amount, Currency, Formatted string
	}
	TrackInventory bool
	Stock, Version int
	ArchivedAt     *string
	CreatedBy      *struct{ ID uuid.UUID }
}

// shop is an organization with its OWNER, an ADMIN and a MEMBER.
type shop struct {
	org                  uuid.UUID
	owner, admin, member *Session
}

func newShop(t *testing.T, tag string) *shop {
	t.Helper()
	s := &shop{owner: srv.RegisterVerified(t, tag+"-owner")}
	s.org = srv.CreateOrg(t, s.owner, tag+" "+uuid.NewString()[:8])
	s.admin = srv.AddMember(t, s.owner, s.org, "ADMIN", tag+"-admin")
	s.member = srv.AddMember(t, s.owner, s.org, "MEMBER", tag+"-member")
	return s
}

func createProduct(t *testing.T, s *Session, org uuid.UUID, in map[string]any) productOut {
	t.Helper()
	r := MustOK(t, srv.Post(t, s.AccessToken, `mutation($o: ID!, $in: CreateProductInput!) {
		createProduct(orgId: $o, input: $in) { `+productFields+` } }`, map[string]any{"o": org, "in": in}))
	var out struct{ CreateProduct productOut }
	r.Decode(t, &out)
	return out.CreateProduct
}

const adjust = `mutation($o: ID!, $p: ID!, $d: Int!, $k: String) {
	adjustStock(orgId: $o, productId: $p, delta: $d, reason: "count", idempotencyKey: $k) { stock } }`

// ledger returns a product's stock and its ledger's sum, from the database.
func ledger(t *testing.T, org, product uuid.UUID) (stock, sum int) {
	t.Helper()
	return stockAndLedger(t, org, product)
}

func auditCount(t *testing.T, org uuid.UUID, action string) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = $2`, org, action); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProductsCreateListUpdateArchive(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cat-crud")
	mug := createProduct(t, s.admin, s.org, map[string]any{"sku": " MUG-1 ", "name": " Mug ", "price": "1250", "initialStock": 5})
	if mug.Sku != "MUG-1" || mug.Name != "Mug" || mug.Price.Amount != "1250" || mug.Price.Currency != "USD" ||
		mug.Price.Formatted != "USD 12.50" || !mug.TrackInventory || mug.Stock != 5 || mug.Version != 1 ||
		mug.CreatedBy == nil || mug.CreatedBy.ID != s.admin.UserID {
		t.Fatalf("created: %+v", mug)
	}
	svc := createProduct(t, s.owner, s.org, map[string]any{"sku": "SETUP", "name": "Setup service", "price": 90000, "trackInventory": false})
	if svc.TrackInventory || svc.Stock != 0 || svc.Price.Formatted != "USD 900.00" {
		t.Fatalf("service: %+v", svc)
	}
	if s, l := ledger(t, s.org, mug.ID); s != 5 || l != 5 {
		t.Fatalf("the initial stock: stock %d, ledger %d", s, l)
	}

	// Refused input changes nothing.
	for _, c := range []struct {
		in          map[string]any
		code, field string
	}{
		{map[string]any{"sku": "mug-1", "name": "Dup", "price": "1"}, "CONFLICT", "sku"},
		{map[string]any{"sku": "bad sku", "name": "X", "price": "1"}, "BAD_USER_INPUT", "sku"},
		{map[string]any{"sku": "NEG", "name": "X", "price": "-1"}, "BAD_USER_INPUT", "price"},
		{map[string]any{"sku": "BIG", "name": "X", "price": "1000000000001"}, "BAD_USER_INPUT", "price"},
		{map[string]any{"sku": "SVC2", "name": "X", "price": "1", "trackInventory": false, "initialStock": 1}, "BAD_USER_INPUT", "initialStock"},
		{map[string]any{"sku": "NAME", "name": "  ", "price": "1"}, "BAD_USER_INPUT", "name"},
	} {
		r := srv.Post(t, s.admin.AccessToken, `mutation($o: ID!, $in: CreateProductInput!) { createProduct(orgId: $o, input: $in) { id } }`,
			map[string]any{"o": s.org, "in": c.in})
		if r.Code() != c.code || r.Field() != c.field {
			t.Errorf("%v: %s, want %s on %s", c.in, r.Raw, c.code, c.field)
		}
	}
	if r := srv.Post(t, s.admin.AccessToken, `mutation($o: ID!) { createProduct(orgId: $o, input: {sku: "X", name: "X", price: "1.5"}) { id } }`,
		map[string]any{"o": s.org}); r.Code() != "BAD_USER_INPUT" {
		t.Errorf("a fractional amount: %s, want BAD_USER_INPUT", r.Raw)
	}
	if n := auditCount(t, s.org, "product.created"); n != 2 {
		t.Fatalf("%d product.created events, want 2", n)
	}

	// Update with and without expectedVersion; a stale version is CONFLICT.
	upd := `mutation($o: ID!, $id: ID!, $in: UpdateProductInput!, $v: Int) { updateProduct(orgId: $o, id: $id, input: $in, expectedVersion: $v) { ` + productFields + ` } }`
	r := MustOK(t, srv.Post(t, s.owner.AccessToken, upd, map[string]any{"o": s.org, "id": mug.ID, "v": 1,
		"in": map[string]any{"price": "1500", "description": "Stoneware"}}))
	var out struct{ UpdateProduct productOut }
	r.Decode(t, &out)
	if out.UpdateProduct.Version != 2 || out.UpdateProduct.Price.Amount != "1500" || out.UpdateProduct.Stock != 5 ||
		out.UpdateProduct.Description == nil || *out.UpdateProduct.Description != "Stoneware" {
		t.Fatalf("updated: %+v", out.UpdateProduct)
	}
	if r := srv.Post(t, s.admin.AccessToken, upd, map[string]any{"o": s.org, "id": mug.ID, "v": 1, "in": map[string]any{"name": "Old tab"}}); r.Code() != "CONFLICT" || r.Field() != "expectedVersion" {
		t.Fatalf("a stale version: %s", r.Raw)
	}
	r = MustOK(t, srv.Post(t, s.admin.AccessToken, upd, map[string]any{"o": s.org, "id": mug.ID, "in": map[string]any{"description": nil, "price": "1500"}}))
	r.Decode(t, &out)
	if out.UpdateProduct.Description != nil || out.UpdateProduct.Version != 3 {
		t.Fatalf("cleared description: %+v", out.UpdateProduct)
	}
	MustOK(t, srv.Post(t, s.admin.AccessToken, upd, map[string]any{"o": s.org, "id": mug.ID, "in": map[string]any{"price": "1500"}}))
	if n := auditCount(t, s.org, "product.updated"); n != 2 {
		t.Fatalf("%d product.updated events, want 2 (an update that changes nothing writes none)", n)
	}
	if r := srv.Post(t, s.member.AccessToken, upd, map[string]any{"o": s.org, "id": mug.ID, "in": map[string]any{"price": "1"}}); r.Code() != "FORBIDDEN" {
		t.Fatalf("a MEMBER updates: %s", r.Raw)
	}

	// Archive hides it from the default list; search matches name or SKU.
	MustOK(t, srv.Post(t, s.admin.AccessToken, `mutation($o: ID!, $id: ID!) { archiveProduct(orgId: $o, id: $id) { id } }`, map[string]any{"o": s.org, "id": svc.ID}))
	if r := srv.Post(t, s.admin.AccessToken, `mutation($o: ID!, $id: ID!) { archiveProduct(orgId: $o, id: $id) { id } }`, map[string]any{"o": s.org, "id": svc.ID}); r.Code() != "CONFLICT" {
		t.Fatalf("archive twice: %s", r.Raw)
	}
	list := func(args string) []string {
		t.Helper()
		r := MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!) { products(orgId: $o`+args+`) { totalCount edges { node { sku } } } }`, map[string]any{"o": s.org}))
		var out struct {
			Products struct {
				TotalCount int
				Edges      []struct{ Node struct{ Sku string } }
			}
		}
		r.Decode(t, &out)
		var skus []string
		for _, e := range out.Products.Edges {
			skus = append(skus, e.Node.Sku)
		}
		if out.Products.TotalCount != len(skus) {
			t.Fatalf("totalCount %d for %v", out.Products.TotalCount, skus)
		}
		return skus
	}
	if got := list(""); len(got) != 1 || got[0] != "MUG-1" {
		t.Fatalf("default list: %v", got)
	}
	if got := list(", includeArchived: true"); len(got) != 2 || got[0] != "MUG-1" || got[1] != "SETUP" {
		t.Fatalf("with archived, by name: %v", got)
	}
	if got := list(`, search: "setup", includeArchived: true`); len(got) != 1 || got[0] != "SETUP" {
		t.Fatalf("search by name: %v", got)
	}
	if got := list(`, search: "mug-"`); len(got) != 1 {
		t.Fatalf("search by SKU: %v", got)
	}
}

// TestAdjustStockNeverBelowZero: 20 concurrent -1 adjustments of a product
// with 10 in stock: exactly 10 succeed, the others are CONFLICT on delta, and
// the stock is 0 and equals its ledger.
func TestAdjustStockNeverBelowZero(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cat-race")
	p := createProduct(t, s.admin, s.org, map[string]any{"sku": "HOT", "name": "Hot item", "price": "100", "initialStock": 10})
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r := srv.Post(t, s.admin.AccessToken, adjust, map[string]any{"o": s.org, "p": p.ID, "d": -1})
			code := r.Code()
			if code == "CONFLICT" && r.Field() != "delta" {
				code = "CONFLICT on " + r.Field()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[""] != 10 || codes["CONFLICT"] != 10 {
		t.Fatalf("outcomes %v, want 10 OK and 10 CONFLICT", codes)
	}
	if st, l := ledger(t, s.org, p.ID); st != 0 || l != 0 {
		t.Fatalf("stock %d, ledger %d after the race: want 0 and 0", st, l)
	}
	if n := auditCount(t, s.org, "stock.adjusted"); n != 10 {
		t.Fatalf("%d stock.adjusted events, want 10", n)
	}
	svc := createProduct(t, s.admin, s.org, map[string]any{"sku": "SVC", "name": "Service", "price": "100", "trackInventory": false})
	if r := srv.Post(t, s.admin.AccessToken, adjust, map[string]any{"o": s.org, "p": svc.ID, "d": 1}); r.Code() != "CONFLICT" {
		t.Fatalf("stock for a service: %s", r.Raw)
	}
	if r := srv.Post(t, s.admin.AccessToken, adjust, map[string]any{"o": s.org, "p": p.ID, "d": 0}); r.Code() != "BAD_USER_INPUT" || r.Field() != "delta" {
		t.Fatalf("a zero delta: %s", r.Raw)
	}
}

// TestAdjustStockIdempotencyKey: a retried adjustment moves the stock once.
func TestAdjustStockIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cat-idem")
	p := createProduct(t, s.admin, s.org, map[string]any{"sku": "K", "name": "Keyed", "price": "100"})
	vars := map[string]any{"o": s.org, "p": p.ID, "d": 7, "k": "restock-" + uuid.NewString()}
	a := MustOK(t, srv.Post(t, s.admin.AccessToken, adjust, vars))
	b := MustOK(t, srv.Post(t, s.admin.AccessToken, adjust, vars))
	if string(a.Data) != string(b.Data) {
		t.Fatalf("replay %s, first %s", b.Data, a.Data)
	}
	if st, l := ledger(t, s.org, p.ID); st != 7 || l != 7 {
		t.Fatalf("stock %d, ledger %d: want 7 (once)", st, l)
	}
	vars["d"] = 8
	if r := srv.Post(t, s.admin.AccessToken, adjust, vars); r.Code() != "CONFLICT" || r.Field() != "idempotencyKey" {
		t.Fatalf("the key with another delta: %s", r.Raw)
	}
	r := MustOK(t, srv.Post(t, s.member.AccessToken, `query($o: ID!, $id: ID!) { product(orgId: $o, id: $id) {
		stock movements { totalCount edges { node { delta reason note actor { id } } } } } }`, map[string]any{"o": s.org, "id": p.ID}))
	var out struct {
		Product struct {
			Stock     int
			Movements struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Delta        int
						Reason, Note string
						Actor        struct{ ID uuid.UUID }
					}
				}
			}
		}
	}
	r.Decode(t, &out)
	if m := out.Product.Movements; m.TotalCount != 1 || m.Edges[0].Node.Delta != 7 || m.Edges[0].Node.Reason != "ADJUSTMENT" ||
		m.Edges[0].Node.Note != "count" || m.Edges[0].Node.Actor.ID != s.admin.UserID {
		t.Fatalf("movements: %+v", m)
	}
}

// TestCrossTenantProductIDsAreNotFound: an ADMIN of A who passes B's product
// with A's orgId gets NOT_FOUND, as for an id that does not exist, and B's
// product does not change.
func TestCrossTenantProductIDsAreNotFound(t *testing.T) {
	t.Parallel()
	a, b := newShop(t, "cat-xa"), newShop(t, "cat-xb")
	pb := createProduct(t, b.admin, b.org, map[string]any{"sku": "B-1", "name": "B's", "price": "100", "initialStock": 3})
	for _, id := range []uuid.UUID{pb.ID, uuid.New()} {
		for name, q := range map[string]string{
			"product":        `query($o: ID!, $id: ID!) { product(orgId: $o, id: $id) { id } }`,
			"updateProduct":  `mutation($o: ID!, $id: ID!) { updateProduct(orgId: $o, id: $id, input: {price: "1"}) { id } }`,
			"archiveProduct": `mutation($o: ID!, $id: ID!) { archiveProduct(orgId: $o, id: $id) { id } }`,
			"adjustStock":    `mutation($o: ID!, $id: ID!) { adjustStock(orgId: $o, productId: $id, delta: -1, reason: "x") { id } }`,
		} {
			if r := srv.Post(t, a.owner.AccessToken, q, map[string]any{"o": a.org, "id": id}); r.Code() != "NOT_FOUND" {
				t.Errorf("%s of %s through A: %s, want NOT_FOUND", name, id, r.Raw)
			}
		}
	}
	if st, l := ledger(t, b.org, pb.ID); st != 3 || l != 3 {
		t.Fatalf("B's product: stock %d, ledger %d: want 3", st, l)
	}
}

// TestProductsPageCostsConstantStatements: a page of products with their
// creators and prices costs 3 statements (the role check, the page, every
// creator in one query) whether it holds 5 or 50 products.
func TestProductsPageCostsConstantStatements(t *testing.T) {
	t.Parallel()
	s := newShop(t, "cat-stmt")
	if _, err := srv.DB.Exec(`INSERT INTO products (organization_id, sku, name, price, created_by, created_at, updated_at)
		SELECT $1, 'S-' || i, 'Stmt ' || lpad(i::text, 3, '0'), i * 100, (ARRAY[$2, $3]::uuid[])[1 + i % 2], now(), now()
		FROM generate_series(1, 60) AS i`, s.org, s.owner.UserID, s.admin.UserID); err != nil {
		t.Fatal(err)
	}
	// Three movements each: +1, +2, +3 (newest first: +3).
	if _, err := srv.DB.Exec(`INSERT INTO inventory_movements (organization_id, product_id, delta, reason, actor_id, created_at)
		SELECT p.organization_id, p.id, d, 'ADJUSTMENT', $2, now() FROM products p CROSS JOIN generate_series(1, 3) AS d
		WHERE p.organization_id = $1 ORDER BY p.id, d`, s.org, s.admin.UserID); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{5, 50} {
		r, stmts := srv.PostCounted(t, s.member.AccessToken, `query($o: ID!, $n: Int) { products(orgId: $o, first: $n) {
			edges { node { sku price { formatted } createdBy { email } } } } }`, map[string]any{"o": s.org, "n": n})
		MustOK(t, r)
		var out struct {
			Products struct {
				Edges []struct {
					Node struct{ CreatedBy struct{ Email string } }
				}
			}
		}
		r.Decode(t, &out)
		if len(out.Products.Edges) != n || out.Products.Edges[n-1].Node.CreatedBy.Email == "" {
			t.Fatalf("%d products listed (want %d), the last: %+v", len(out.Products.Edges), n, out.Products.Edges)
		}
		if stmts != 3 {
			t.Errorf("a page of %d products cost %d statements, want 3", n, stmts)
		}
		// With their ledgers' first pages, counts and actors: one batch each
		// (movements, counts; the actors join the creators' batch).
		r, stmts = srv.PostCounted(t, s.member.AccessToken, `query($o: ID!, $n: Int) { products(orgId: $o, first: $n) {
			edges { node { sku createdBy { email } movements(first: 2) { totalCount edges { node { delta actor { email } } } } } } } }`,
			map[string]any{"o": s.org, "n": n})
		MustOK(t, r)
		var withLedger struct {
			Products struct {
				Edges []struct {
					Node struct {
						Movements struct {
							TotalCount int
							Edges      []struct {
								Node struct {
									Delta int
									Actor struct{ Email string }
								}
							}
						}
					}
				}
			}
		}
		r.Decode(t, &withLedger)
		last := withLedger.Products.Edges[n-1].Node.Movements
		if last.TotalCount != 3 || len(last.Edges) != 2 || last.Edges[0].Node.Delta != 3 || last.Edges[0].Node.Actor.Email == "" {
			t.Fatalf("the last product's ledger: %+v", last)
		}
		if stmts != 5 {
			t.Errorf("a page of %d products with their ledgers cost %d statements, want 5", n, stmts)
		}
	}
}
