package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

type readyBody struct {
	Status   string
	Reason   string
	Schema   int64 `json:"schemaVersion"`
	Expected int64 `json:"expectedSchemaVersion"`
}

// readyServer serves a new App on a database of its own (the package's shared one
// must stay migrated), returning the server and that database.
func readyServer(t *testing.T) (*httptest.Server, *dbtest.Database) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := dbtest.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	cfg := srv.Config
	cfg.DatabaseURL = d.URL
	a, err := app.New(app.Options{Config: cfg, DB: d.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return hs, d
}

func readyz(t *testing.T, base string) (int, readyBody) {
	t.Helper()
	res, body := get(t, base+"/readyz", nil)
	var b readyBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("/readyz: %d, not JSON: %q", res.StatusCode, body)
	}
	return res.StatusCode, b
}

// readyWithin polls /readyz until it answers status (its answer is cached for
// app.ReadyCacheFor), failing after a few seconds.
func readyWithin(t *testing.T, base string, status int) readyBody {
	t.Helper()
	deadline := time.Now().Add(app.ReadyCacheFor + 5*time.Second)
	for {
		got, b := readyz(t, base)
		if got == status {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %+v, want %d", got, b, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadinessFollowsMigrations: a database one migration behind the binary is
// not ready (503, naming both versions); migrated up, it is.
func TestReadinessFollowsMigrations(t *testing.T) {
	t.Parallel()
	hs, d := readyServer(t)
	expected, err := db.ExpectedVersion()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.MigrateDown(ctx, d.DB.DB); err != nil {
		t.Fatal(err)
	}
	behind, err := db.SchemaVersion(ctx, d.DB.DB)
	if err != nil || behind >= expected {
		t.Fatalf("after migrate down: version %d (%v), want below %d", behind, err, expected)
	}

	status, b := readyz(t, hs.URL)
	if status != http.StatusServiceUnavailable || b.Status != "not ready" || b.Schema != behind || b.Expected != expected ||
		!strings.Contains(b.Reason, fmt.Sprintf("version %d, behind this binary's %d", behind, expected)) {
		t.Fatalf("one migration behind: %d %+v", status, b)
	}
	// /healthz is liveness: the process runs, whatever the schema.
	if res, _ := get(t, hs.URL+"/healthz", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d while not ready", res.StatusCode)
	}

	if err := db.MigrateUp(ctx, d.DB.DB); err != nil {
		t.Fatal(err)
	}
	if b := readyWithin(t, hs.URL, http.StatusOK); b.Status != "ready" || b.Schema != expected || b.Expected != expected || b.Reason != "" {
		t.Fatalf("migrated up: %+v", b)
	}
}

// TestReadinessWithASchemaAheadOfTheBinary: a newer release has migrated past this
// binary (a rolling deploy): still ready.
func TestReadinessWithASchemaAheadOfTheBinary(t *testing.T) {
	t.Parallel()
	hs, d := readyServer(t)
	expected, err := db.ExpectedVersion()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, expected+1); err != nil {
		t.Fatal(err)
	}
	if status, b := readyz(t, hs.URL); status != http.StatusOK || b.Status != "ready" || b.Schema != expected+1 || b.Expected != expected {
		t.Fatalf("schema ahead: %d %+v", status, b)
	}
}
