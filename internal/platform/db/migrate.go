package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"tenantgraph/migrations"
)

func provider(d *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, d, migrations.FS)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// MigrateUp applies every pending migration.
func MigrateUp(ctx context.Context, d *sql.DB) error {
	p, err := provider(d)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back the most recent migration.
func MigrateDown(ctx context.Context, d *sql.DB) error {
	p, err := provider(d)
	if err != nil {
		return err
	}
	if _, err := p.Down(ctx); err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// MigrateStatus writes one line per migration: its version, file and state.
func MigrateStatus(ctx context.Context, d *sql.DB, w io.Writer) error {
	p, err := provider(d)
	if err != nil {
		return err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "%05d  %-40s %s\n", s.Source.Version, s.Source.Path, applied)
	}
	return nil
}

// ExpectedVersion is the schema version this binary was built for: its newest
// embedded migration.
var ExpectedVersion = sync.OnceValues(func() (int64, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var newest int64
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return 0, fmt.Errorf("migrations: %s: %w", n, err)
		}
		newest = max(newest, v)
	}
	if newest == 0 {
		return 0, errors.New("migrations: none embedded")
	}
	return newest, nil
})

var versionStore = sync.OnceValues(func() (database.Store, error) {
	return database.NewStore(goose.DialectPostgres, goose.DefaultTablename)
})

// SchemaVersion is the version of d's schema: the newest migration goose
// recorded there, 0 when none ran. It only reads: unlike goose's own version
// calls, it never creates goose's table.
func SchemaVersion(ctx context.Context, d *sql.DB) (int64, error) {
	st, err := versionStore()
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	v, err := st.GetLatestVersion(ctx, d)
	var pe *pq.Error
	switch {
	case errors.Is(err, database.ErrVersionNotFound), errors.As(err, &pe) && pe.Code == "42P01": // undefined_table
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}
