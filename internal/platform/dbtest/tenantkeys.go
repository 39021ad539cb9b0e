package dbtest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// TenantColumn names the column that makes a table a tenant table.
const TenantColumn = "organization_id"

// The rules of the tenant-key check (docs/api.md, "Tenant keys").
const (
	// RuleTenantKey: a tenant table has a primary key, and organization_id is a key column of
	// it and of every unique constraint and unique index (partial ones too).
	RuleTenantKey = "tenant-key"
	// RuleTenantFK: a foreign key from a tenant table to a tenant table pairs
	// organization_id with organization_id.
	RuleTenantFK = "tenant-fk"
	// RuleFKIndex: a foreign key's columns are exactly the leading key columns (in any
	// order) of a valid, non-partial index on the referencing table.
	RuleFKIndex = "fk-index"
)

// Violation is one breach of the tenant-key rule.
type Violation struct {
	Rule   string
	Table  string
	Name   string // the constraint or index at fault; empty for a missing primary key
	Detail string
}

// Key identifies the violation for exception lists: "table.name", or "table" alone.
func (v Violation) Key() string {
	if v.Name == "" {
		return v.Table
	}
	return v.Table + "." + v.Name
}

func (v Violation) String() string {
	if v.Name == "" {
		return fmt.Sprintf("%s: table %s %s", v.Rule, v.Table, v.Detail)
	}
	return fmt.Sprintf("%s: table %s, %s", v.Rule, v.Table, v.Detail)
}

type catalogIndex struct {
	Table    string         `db:"table_name"`
	Name     string         `db:"index_name"`
	Unique   bool           `db:"is_unique"`
	Primary  bool           `db:"is_primary"`
	Partial  bool           `db:"is_partial"`
	Valid    bool           `db:"is_valid"`
	ConType  string         `db:"contype"`
	KeyCols  pq.StringArray `db:"key_cols"` // "" for an expression
	Included pq.StringArray `db:"included_cols"`
}

func (ix catalogIndex) describe() string {
	kind := "unique index"
	switch {
	case ix.Primary:
		kind = "primary key"
	case ix.ConType == "u":
		kind = "unique constraint"
	case ix.Partial:
		kind = "partial unique index"
	}
	return fmt.Sprintf("%s %s (%s)", kind, ix.Name, strings.Join(exprNames(ix.KeyCols), ", "))
}

func exprNames(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		if c == "" {
			c = "<expression>"
		}
		out[i] = c
	}
	return out
}

type catalogFK struct {
	Table     string         `db:"table_name"`
	Name      string         `db:"conname"`
	RefSchema string         `db:"ref_schema"`
	RefTable  string         `db:"ref_table"`
	Cols      pq.StringArray `db:"cols"`
	RefCols   pq.StringArray `db:"ref_cols"`
	RefTenant bool           `db:"ref_tenant"`
}

// TenantKeyViolations reads the PostgreSQL catalog and returns every breach of the
// tenant-key rule among the tables of schema, sorted by rule, table and name. Partitions
// are left out: their parent is checked.
func TenantKeyViolations(ctx context.Context, q sqlx.QueryerContext, schema string) ([]Violation, error) {
	var tables []struct {
		Name   string `db:"table_name"`
		Tenant bool   `db:"is_tenant"`
	}
	if err := sqlx.SelectContext(ctx, q, &tables, `
		SELECT c.relname AS table_name,
		       EXISTS (SELECT 1 FROM pg_attribute a
		               WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS is_tenant
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition`, schema, TenantColumn); err != nil {
		return nil, fmt.Errorf("tenant keys: tables: %w", err)
	}
	var indexes []catalogIndex
	if err := sqlx.SelectContext(ctx, q, &indexes, `
		SELECT t.relname AS table_name, i.relname AS index_name,
		       x.indisunique AS is_unique, x.indisprimary AS is_primary,
		       x.indpred IS NOT NULL AS is_partial, x.indisvalid AS is_valid,
		       coalesce((SELECT con.contype::text FROM pg_constraint con
		                 WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid
		                   AND con.contype IN ('p', 'u', 'x')), '') AS contype,
		       ARRAY(SELECT coalesce(a.attname::text, '')
		             FROM generate_series(0, x.indnkeyatts - 1) k
		             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k]
		             ORDER BY k) AS key_cols,
		       ARRAY(SELECT coalesce(a.attname::text, '')
		             FROM generate_series(x.indnkeyatts, x.indnatts - 1) k
		             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k]
		             ORDER BY k) AS included_cols
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND NOT t.relispartition`, schema); err != nil {
		return nil, fmt.Errorf("tenant keys: indexes: %w", err)
	}
	var fks []catalogFK
	if err := sqlx.SelectContext(ctx, q, &fks, `
		SELECT t.relname AS table_name, con.conname, rn.nspname AS ref_schema, r.relname AS ref_table,
		       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
		             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
		             ORDER BY k.ord) AS cols,
		       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
		             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
		             ORDER BY k.ord) AS ref_cols,
		       EXISTS (SELECT 1 FROM pg_attribute a
		               WHERE a.attrelid = con.confrelid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS ref_tenant
		FROM pg_constraint con
		JOIN pg_class t ON t.oid = con.conrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		JOIN pg_class r ON r.oid = con.confrelid
		JOIN pg_namespace rn ON rn.oid = r.relnamespace
		WHERE con.contype = 'f' AND n.nspname = $1 AND NOT t.relispartition`, schema, TenantColumn); err != nil {
		return nil, fmt.Errorf("tenant keys: foreign keys: %w", err)
	}

	tenant := map[string]bool{}
	for _, t := range tables {
		tenant[t.Name] = t.Tenant
	}
	byTable := map[string][]catalogIndex{}
	for _, ix := range indexes {
		byTable[ix.Table] = append(byTable[ix.Table], ix)
	}
	var out []Violation

	// a. Tenant tables: organization_id in the primary key and every unique key.
	for _, t := range tables {
		if !t.Tenant {
			continue
		}
		hasPK := false
		for _, ix := range byTable[t.Name] {
			hasPK = hasPK || ix.Primary
			if !ix.Unique || slices.Contains(ix.KeyCols, TenantColumn) {
				continue
			}
			detail := ix.describe() + " lacks " + TenantColumn
			if slices.Contains(ix.Included, TenantColumn) {
				detail += " as a key column (INCLUDE does not count)"
			}
			out = append(out, Violation{Rule: RuleTenantKey, Table: t.Name, Name: ix.Name, Detail: detail})
		}
		if !hasPK {
			out = append(out, Violation{Rule: RuleTenantKey, Table: t.Name,
				Detail: "has " + TenantColumn + " but no primary key (it must be one with " + TenantColumn + ")"})
		}
	}

	for _, fk := range fks {
		desc := fmt.Sprintf("foreign key %s (%s) -> %s.%s (%s)", fk.Name, strings.Join(fk.Cols, ", "),
			fk.RefSchema, fk.RefTable, strings.Join(fk.RefCols, ", "))

		// b. Between tenant tables, organization_id must reference organization_id.
		if tenant[fk.Table] && fk.RefTenant {
			matched := false
			for i := range fk.Cols {
				matched = matched || (fk.Cols[i] == TenantColumn && i < len(fk.RefCols) && fk.RefCols[i] == TenantColumn)
			}
			if !matched {
				out = append(out, Violation{Rule: RuleTenantFK, Table: fk.Table, Name: fk.Name,
					Detail: desc + " joins two tenant tables without matching " + TenantColumn + " to " + TenantColumn + " (make it composite)"})
			}
		}

		// c. Every foreign key is led by a full index.
		covered := false
		for _, ix := range byTable[fk.Table] {
			if ix.Partial || !ix.Valid || len(ix.KeyCols) < len(fk.Cols) {
				continue
			}
			lead := slices.Clone([]string(ix.KeyCols[:len(fk.Cols)]))
			want := slices.Clone([]string(fk.Cols))
			slices.Sort(lead)
			slices.Sort(want)
			if slices.Equal(lead, want) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, Violation{Rule: RuleFKIndex, Table: fk.Table, Name: fk.Name,
				Detail: desc + " has no full index whose leading columns are exactly (" + strings.Join(fk.Cols, ", ") + ")"})
		}
	}

	slices.SortFunc(out, func(a, b Violation) int {
		return strings.Compare(a.Rule+"\x00"+a.Table+"\x00"+a.Name, b.Rule+"\x00"+b.Table+"\x00"+b.Name)
	})
	return out, nil
}
