package catalog_test

import (
	"testing"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/dbtest"
)

// These tests hold the catalog's invariants on the database itself, bypassing
// the service: a product's stock is its ledger's sum and never below zero; the
// ledger is append-only; a movement cannot point into another organization.

// newProduct commits an organization and a product of it that tracks inventory.
func newProduct(t *testing.T) (org, product uuid.UUID) {
	t.Helper()
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	org, product = dbtest.NewOrgTx(t, tx), uuid.New()
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`,
		org, dbtest.NewUser(t, tx))
	dbtest.Exec(t, tx, `INSERT INTO products (organization_id, id, sku, name, price, created_at, updated_at)
		VALUES ($1, $2, $3, 'Widget', 100, now(), now())`, org, product, "W-"+uuid.NewString()[:8])
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return org, product
}

func move(org, product uuid.UUID, delta int) error {
	_, err := database.DB.Exec(`INSERT INTO inventory_movements (organization_id, product_id, delta, reason, created_at)
		VALUES ($1, $2, $3, 'ADJUSTMENT', now())`, org, product, delta)
	return err
}

// stockAndLedger returns a product's stock and the sum of its movements.
func stockAndLedger(t *testing.T, org, product uuid.UUID) (stock, ledger int) {
	t.Helper()
	if err := database.DB.QueryRow(`SELECT p.stock, coalesce((SELECT sum(delta) FROM inventory_movements m
		WHERE m.organization_id = p.organization_id AND m.product_id = p.id), 0)
		FROM products p WHERE p.organization_id = $1 AND p.id = $2`, org, product).Scan(&stock, &ledger); err != nil {
		t.Fatal(err)
	}
	return stock, ledger
}

func TestDBStockIsTheLedgersSum(t *testing.T) {
	t.Parallel()
	org, product := newProduct(t)
	if err := move(org, product, 5); err != nil {
		t.Fatal(err)
	}
	if err := move(org, product, -3); err != nil {
		t.Fatal(err)
	}
	dbtest.WantViolation(t, move(org, product, -3), "a movement below zero", "23514", "products_stock_check")
	if s, l := stockAndLedger(t, org, product); s != 2 || l != 2 {
		t.Fatalf("stock %d, ledger %d: want 2 and 2", s, l)
	}
	_, err := database.DB.Exec(`UPDATE products SET stock = 100 WHERE organization_id = $1 AND id = $2`, org, product)
	dbtest.WantViolation(t, err, "a stock set by hand", "23514", "products_stock_ledger")
	_, err = database.DB.Exec(`INSERT INTO products (organization_id, sku, name, price, stock, created_at, updated_at)
		VALUES ($1, 'FULL', 'Full', 1, 7, now(), now())`, org)
	dbtest.WantViolation(t, err, "a product inserted with stock", "23514", "products_stock_ledger")
	// A product that tracks no inventory has no stock.
	var service uuid.UUID
	if err := database.DB.Get(&service, `INSERT INTO products (organization_id, sku, name, price, track_inventory, created_at, updated_at)
		VALUES ($1, 'SVC', 'Service', 1, false, now(), now()) RETURNING id`, org); err != nil {
		t.Fatal(err)
	}
	dbtest.WantViolation(t, move(org, service, 1), "stock for a service", "23514", "products_stock_check")
	if s, l := stockAndLedger(t, org, product); s != 2 || l != 2 {
		t.Fatalf("after the refused writes: stock %d, ledger %d: want 2 and 2", s, l)
	}
}

func TestDBLedgerIsAppendOnly(t *testing.T) {
	t.Parallel()
	org, product := newProduct(t)
	if err := move(org, product, 4); err != nil {
		t.Fatal(err)
	}
	_, err := database.DB.Exec(`UPDATE inventory_movements SET delta = 40 WHERE organization_id = $1`, org)
	dbtest.WantViolation(t, err, "update a movement", "42501", "")
	_, err = database.DB.Exec(`DELETE FROM inventory_movements WHERE organization_id = $1`, org)
	dbtest.WantViolation(t, err, "delete a movement", "42501", "")
	if s, l := stockAndLedger(t, org, product); s != 4 || l != 4 {
		t.Fatalf("stock %d, ledger %d: want 4 and 4", s, l)
	}
}

func TestDBMovementsStayInTheirOrganization(t *testing.T) {
	t.Parallel()
	orgA, productA := newProduct(t)
	orgB, _ := newProduct(t)
	dbtest.WantViolation(t, move(orgB, productA, 1), "B's movement of A's product", "23503", "inventory_movements_product_fkey")
	if s, l := stockAndLedger(t, orgA, productA); s != 0 || l != 0 {
		t.Fatalf("A's product: stock %d, ledger %d: want 0 and 0", s, l)
	}
}

func TestDBSkuIsUniquePerOrganizationInAnyCase(t *testing.T) {
	t.Parallel()
	orgA, _ := newProduct(t)
	orgB, _ := newProduct(t)
	ins := func(org uuid.UUID, sku string) error {
		_, err := database.DB.Exec(`INSERT INTO products (organization_id, sku, name, price, created_at, updated_at)
			VALUES ($1, $2, 'P', 1, now(), now())`, org, sku)
		return err
	}
	if err := ins(orgA, "Mug-1"); err != nil {
		t.Fatal(err)
	}
	dbtest.WantViolation(t, ins(orgA, "MUG-1"), "the same SKU in another case", "23505", "products_org_sku_key")
	if err := ins(orgB, "MUG-1"); err != nil {
		t.Fatalf("the same SKU in another organization: %v", err)
	}
	dbtest.WantViolation(t, ins(orgA, "bad sku"), "a SKU with a space", "23514", "products_sku_check")
	_, err := database.DB.Exec(`INSERT INTO products (organization_id, sku, name, price, created_at, updated_at)
		VALUES ($1, 'NEG', 'P', -1, now(), now())`, orgA)
	dbtest.WantViolation(t, err, "a negative price", "23514", "products_price_check")
}
