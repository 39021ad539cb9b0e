package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
)

// ReadyCacheFor is how long GET /readyz reuses its last answer, so that load
// balancers probing every replica often cost the database at most one check a
// second per replica.
const ReadyCacheFor = time.Second

// readyTimeout bounds one readiness check (ping and version).
const readyTimeout = 2 * time.Second

// readiness answers GET /readyz: ready when PostgreSQL answers and its schema is
// at least at the version this binary expects (db.ExpectedVersion). A schema
// ahead of the binary is ready: during a rolling deploy the new release has
// migrated while older replicas still serve. Once the schema has been seen at
// the expected version the version is not read again (migrations only move
// forward under a running server); the ping goes on.
type readiness struct {
	db       *sqlx.DB
	log      *slog.Logger
	expected int64
	now      func() time.Time

	mu      sync.Mutex // one check at a time: concurrent probes wait for it and share its answer
	at      time.Time  // when last was computed
	last    readyAnswer
	version int64 // the schema version last read
	current bool  // the schema has reached expected: the version is no longer read
}

type readyAnswer struct {
	Status   string `json:"status"` // ready | not ready
	Reason   string `json:"reason,omitempty"`
	Schema   int64  `json:"schemaVersion"`
	Expected int64  `json:"expectedSchemaVersion"`
}

func newReadiness(d *sqlx.DB, log *slog.Logger) (*readiness, error) {
	v, err := db.ExpectedVersion()
	if err != nil {
		return nil, err
	}
	return &readiness{db: d, log: log, expected: v, now: time.Now}, nil
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := rd.answer(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if a.Status != "ready" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	b, _ := json.Marshal(a)
	w.Write(append(b, '\n')) //nolint:errcheck // the prober is gone
}

func (rd *readiness) answer(ctx context.Context) readyAnswer {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.at.IsZero() && rd.now().Sub(rd.at) < ReadyCacheFor {
		return rd.last
	}
	// The probe's own disconnect must not cut the check short: others wait for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	rd.last = rd.check(ctx)
	rd.at = rd.now()
	return rd.last
}

func (rd *readiness) check(ctx context.Context) readyAnswer {
	a := readyAnswer{Status: "not ready", Expected: rd.expected, Schema: rd.version}
	if rd.current {
		if err := rd.db.PingContext(ctx); err != nil {
			a.Reason = "database unreachable"
			return a
		}
		a.Status = "ready"
		return a
	}
	// Reading the version is also the ping.
	v, err := db.SchemaVersion(ctx, rd.db.DB)
	if err != nil {
		rd.log.WarnContext(ctx, "readiness: schema version unreadable", "error", err)
		a.Reason = "database unreachable, or its schema version unreadable"
		return a
	}
	rd.version, a.Schema = v, v
	if v < rd.expected {
		a.Reason = fmt.Sprintf("database schema at version %d, behind this binary's %d: run `tenantgraph migrate up`", v, rd.expected)
		return a
	}
	rd.current = true
	a.Status = "ready"
	return a
}
