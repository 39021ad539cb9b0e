package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/migrations"
)

// These tests read the catalog of the fully migrated database: every migration, today's
// and future ones, is held to the tenant-key rule (docs/api.md, "Tenant keys").

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

// tenantKeyExceptions lists the violations the schema is allowed to keep, by
// Violation.Key() ("table.constraint_or_index"), each with its reason. Keep it empty.
var tenantKeyExceptions = map[string]string{}

func TestSchemaFollowsTenantKeyRule(t *testing.T) {
	vs, err := dbtest.TenantKeyViolations(context.Background(), database.DB, "public")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, v := range vs {
		if reason, ok := tenantKeyExceptions[v.Key()]; ok {
			used[v.Key()] = true
			t.Logf("allowed (%s): %s", reason, v)
			continue
		}
		t.Errorf("%s", v)
	}
	for k := range tenantKeyExceptions {
		if !used[k] {
			t.Errorf("tenantKeyExceptions lists %s, which breaks no rule any more: remove it", k)
		}
	}
}

// TestChecksDoNotDependOnTheLocale: a CHECK that uses a POSIX character class
// ([[:cntrl:]], [[:alpha:]], ...), a case-insensitive match, or lower()/upper()
// outside COLLATE "C" means what the database's LC_CTYPE says, so on a
// production cluster with another locale it could refuse what the service
// accepted here, and the write would fail as an internal error. CHECKs spell
// their ranges out and case-fold under COLLATE "C" (docs/api.md, "CHECKs mean the
// same in every locale"). The bodies of SQL functions (which CHECKs call) are
// held to the same rule.
func TestChecksDoNotDependOnTheLocale(t *testing.T) {
	var rows []struct {
		Name, Def string
	}
	if err := database.DB.Select(&rows, `
		SELECT c.conrelid::regclass::text || '.' || c.conname AS name, pg_get_constraintdef(c.oid) AS def
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE c.contype = 'c' AND n.nspname = 'public'
		UNION ALL
		SELECT 'function ' || p.proname, p.prosrc
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
		WHERE n.nspname = 'public' AND l.lanname = 'sql'
		ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 10 {
		t.Fatalf("only %d CHECK constraints and SQL functions found: the query reads the wrong catalog", len(rows))
	}
	for _, r := range rows {
		if bad := localeDependent(r.Def); bad != "" {
			t.Errorf("%s depends on the locale (%s): %s", r.Name, bad, r.Def)
		}
	}
	for _, c := range []struct {
		def  string
		fine bool
	}{
		{`CHECK ((name !~ '[\x01-\x1f]'::text))`, true},
		{`CHECK ((email = lower((btrim(email) COLLATE "C"))))`, true},
		{`t <> lower(t COLLATE "C")`, true},
		{`CHECK ((name !~ '[[:cntrl:]]'::text))`, false},
		{`CHECK ((email = lower(btrim(email))))`, false},
		{`CHECK ((upper(code) = code))`, false},
		{`CHECK ((name ~* 'x'::text))`, false},
		{`CHECK ((name ~~* 'x'::text))`, false},
	} {
		if got := localeDependent(c.def) == ""; got != c.fine {
			t.Errorf("localeDependent(%q) = %q: the check itself is wrong", c.def, localeDependent(c.def))
		}
	}
}

// caseFold finds the start of a lower(), upper() or initcap() call.
var caseFold = regexp.MustCompile(`(?i)\b(lower|upper|initcap)\(`)

// localeDependent names what makes def depend on the locale, "" when nothing does.
func localeDependent(def string) string {
	for _, bad := range []string{"[[:", "~*", "~~*", " ILIKE "} {
		if strings.Contains(strings.ToUpper(def), strings.ToUpper(bad)) {
			return bad
		}
	}
	for _, m := range caseFold.FindAllStringIndex(def, -1) {
		// The call's argument: up to the parenthesis that closes it.
		depth, end := 1, len(def)
		for i := m[1]; i < len(def); i++ {
			switch def[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				end = i
				break
			}
		}
		if !strings.HasSuffix(strings.TrimRight(def[m[1]:end], ") "), `COLLATE "C"`) {
			return def[m[0]:min(end+1, len(def))] + ` without COLLATE "C"`
		}
	}
	return ""
}

// TestTenantKeyCheckReportsViolations runs the check on a scratch schema holding one
// table per kind of violation, beside tables that follow the rule.
func TestTenantKeyCheckReportsViolations(t *testing.T) {
	ctx := context.Background()
	tx, err := database.DB.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // DDL is transactional: the scratch schema goes with it
	for _, q := range []string{
		`CREATE SCHEMA scratch`,
		`CREATE TABLE scratch.organizations (id uuid PRIMARY KEY)`,
		// Global tables may have any unique key.
		`CREATE TABLE scratch.users (id uuid PRIMARY KEY, email text NOT NULL UNIQUE)`,
		// Non-tenant FK without an index.
		`CREATE TABLE scratch.sessions (id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES scratch.users (id))`,
		// Tenant table whose primary key and unique keys lack organization_id.
		`CREATE TABLE scratch.products (
			organization_id uuid NOT NULL REFERENCES scratch.organizations (id),
			id              uuid PRIMARY KEY,
			sku             text NOT NULL,
			code            text NOT NULL,
			deleted_at      timestamptz,
			CONSTRAINT products_org_id_key UNIQUE (organization_id, id),
			CONSTRAINT products_sku_key UNIQUE (sku)
		)`,
		`CREATE UNIQUE INDEX products_live_sku_key ON scratch.products (lower(sku)) WHERE deleted_at IS NULL`,
		`CREATE UNIQUE INDEX products_code_key ON scratch.products (code) INCLUDE (organization_id)`,
		// Tenant table without a primary key.
		`CREATE TABLE scratch.notes (organization_id uuid NOT NULL, body text)`,
		// Tenant-to-tenant FKs: one on id alone, one composite but pairing organization_id with id.
		`CREATE TABLE scratch.orders (
			organization_id uuid NOT NULL REFERENCES scratch.organizations (id),
			id              uuid NOT NULL,
			product_id      uuid NOT NULL,
			other_id        uuid NOT NULL,
			PRIMARY KEY (organization_id, id),
			CONSTRAINT orders_product_fkey FOREIGN KEY (product_id) REFERENCES scratch.products (id),
			CONSTRAINT orders_crossed_fkey FOREIGN KEY (organization_id, other_id) REFERENCES scratch.products (id, organization_id)
		)`,
		`CREATE INDEX orders_product_idx ON scratch.orders (product_id)`,
		`CREATE INDEX orders_other_idx ON scratch.orders (organization_id, other_id)`,
		// Follows the rule: composite FKs, one covered by the primary key, one by an index
		// whose leading columns are the FK's in another order.
		`CREATE TABLE scratch.order_lines (
			organization_id uuid NOT NULL,
			order_id        uuid NOT NULL,
			line            int  NOT NULL,
			product_id      uuid NOT NULL,
			PRIMARY KEY (organization_id, order_id, line),
			FOREIGN KEY (organization_id, order_id) REFERENCES scratch.orders (organization_id, id),
			FOREIGN KEY (organization_id, product_id) REFERENCES scratch.products (organization_id, id)
		)`,
		`CREATE INDEX order_lines_product_idx ON scratch.order_lines (product_id, organization_id, line)`,
		// FKs to a global table: one unindexed, one with a partial index only, one whose
		// column is not leading, one covered only by INCLUDE.
		`CREATE TABLE scratch.comments (
			organization_id uuid NOT NULL REFERENCES scratch.organizations (id),
			id              uuid NOT NULL,
			author_id       uuid CONSTRAINT comments_author_fkey REFERENCES scratch.users (id),
			reviewer_id     uuid CONSTRAINT comments_reviewer_fkey REFERENCES scratch.users (id),
			editor_id       uuid CONSTRAINT comments_editor_fkey REFERENCES scratch.users (id),
			approver_id     uuid CONSTRAINT comments_approver_fkey REFERENCES scratch.users (id),
			created_at      timestamptz NOT NULL,
			PRIMARY KEY (organization_id, id)
		)`,
		`CREATE INDEX comments_reviewer_idx ON scratch.comments (reviewer_id) WHERE reviewer_id IS NOT NULL`,
		`CREATE INDEX comments_editor_idx ON scratch.comments (created_at, editor_id)`,
		`CREATE INDEX comments_approver_idx ON scratch.comments (created_at) INCLUDE (approver_id)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	vs, err := dbtest.TenantKeyViolations(ctx, tx, "scratch")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tenant-key notes",
		"tenant-key products.products_code_key",
		"tenant-key products.products_live_sku_key",
		"tenant-key products.products_pkey",
		"tenant-key products.products_sku_key",
		"tenant-fk orders.orders_crossed_fkey",
		"tenant-fk orders.orders_product_fkey",
		"fk-index comments.comments_approver_fkey",
		"fk-index comments.comments_author_fkey",
		"fk-index comments.comments_editor_fkey",
		"fk-index comments.comments_reviewer_fkey",
		"fk-index sessions.sessions_user_id_fkey",
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Rule+" "+v.Key())
		// The message names the table and the constraint or index.
		if s := v.String(); !strings.Contains(s, "table "+v.Table) || !strings.Contains(s, v.Name) {
			t.Errorf("message %q does not name table %s and %q", s, v.Table, v.Name)
		}
		t.Log(v)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// TestMigrationsDownRestoreSchema applies the migrations one by one from an empty
// database, then rolls them back one by one: each Down must give back exactly the schema
// its Up started from.
func TestMigrationsDownRestoreSchema(t *testing.T) {
	ctx := context.Background()
	d, err := dbtest.New(ctx) // its own database: the others' tests keep a migrated one
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, d.DB.DB, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("roll back every migration: %v", err)
	}
	snapshots := []string{schemaSnapshot(t, d)} // snapshots[i]: after the first i migrations
	if strings.TrimSpace(snapshots[0]) != "" {
		t.Fatalf("schema left after rolling back every migration:\n%s", snapshots[0])
	}
	var versions []int64
	for {
		r, err := p.UpByOne(ctx)
		if err != nil {
			if errors.Is(err, goose.ErrNoNextVersion) {
				break
			}
			t.Fatalf("up: %v", err)
		}
		versions = append(versions, r.Source.Version)
		snapshots = append(snapshots, schemaSnapshot(t, d))
	}
	if len(versions) != len(p.ListSources()) {
		t.Fatalf("applied %d migrations of %d", len(versions), len(p.ListSources()))
	}
	for i := len(versions); i > 0; i-- {
		if _, err := p.Down(ctx); err != nil {
			t.Fatalf("down from %05d: %v", versions[i-1], err)
		}
		if got := schemaSnapshot(t, d); got != snapshots[i-1] {
			// Stop here: the rollbacks below would inherit the difference.
			t.Fatalf("rolling back %05d does not restore the schema before it:\n%s", versions[i-1], diffLines(snapshots[i-1], got))
		}
	}
}

// schemaSnapshot describes the public schema: columns, constraints, indexes, triggers and
// functions, one sorted line each (goose's own table left out).
func schemaSnapshot(t *testing.T, d *dbtest.Database) string {
	t.Helper()
	var lines []string
	err := d.DB.Select(&lines, `
		SELECT format('column %s.%s %s %s default %s identity %s', c.table_name, c.column_name, c.data_type,
		              c.is_nullable, coalesce(c.column_default, '-'), c.is_identity)
		FROM information_schema.columns c
		WHERE c.table_schema = 'public' AND c.table_name <> 'goose_db_version'
		UNION ALL
		SELECT format('constraint %s.%s %s', r.relname, con.conname, pg_get_constraintdef(con.oid))
		FROM pg_constraint con JOIN pg_class r ON r.oid = con.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
		WHERE n.nspname = 'public' AND r.relname <> 'goose_db_version'
		UNION ALL
		SELECT format('index %s', pg_get_indexdef(x.indexrelid))
		FROM pg_index x JOIN pg_class r ON r.oid = x.indrelid JOIN pg_namespace n ON n.oid = r.relnamespace
		WHERE n.nspname = 'public' AND r.relname <> 'goose_db_version'
		UNION ALL
		SELECT format('trigger %s', pg_get_triggerdef(tg.oid))
		FROM pg_trigger tg JOIN pg_class r ON r.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
		WHERE n.nspname = 'public' AND NOT tg.tgisinternal
		UNION ALL
		SELECT format('function %s', pg_get_functiondef(pr.oid))
		FROM pg_proc pr JOIN pg_namespace n ON n.oid = pr.pronamespace
		WHERE n.nspname = 'public'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// diffLines lists the lines only in want (-) and only in got (+).
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
