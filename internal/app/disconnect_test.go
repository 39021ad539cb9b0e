package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

// TestClientDisconnectsAreNotErrors: 50 clients give up on requests stuck
// behind a lock. Their requests run to their end anyway, each logged once at
// INFO with status 499 and never as an internal error, and the server's pool
// keeps its 20 connections: the next 100 requests need no new one. (Cancelling a
// lib/pq statement closes its connection, so before this the pool lost one per
// cancelled statement.) Not parallel: it counts the database's connections.
func TestClientDisconnectsAreNotErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := srv.RegisterVerified(t, "disconnect")
	org := srv.CreateOrg(t, owner, "Disconnect "+uuid.NewString()[:8])
	admin, err := db.Open(ctx, srv.Config.DirectURL(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	logStart := len(srv.Logs())

	// Hold the organization's row: every updateOrganization waits for it.
	lock, err := admin.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback() //nolint:errcheck
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, org); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation DisconnectProbe($o: ID!) { updateOrganization(orgId: $o, input: {}) { id } }`,
		"variables": map[string]any{"o": org}})
	clientCtx, hangUp := context.WithCancel(ctx)
	goneBefore := srv.ClientsGone()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(clientCtx, http.MethodPost, srv.URL+"/query", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+owner.AccessToken)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
				t.Errorf("a request answered while the organization was locked: %d", res.StatusCode)
			}
		})
	}
	// Wait until all 50 are inside the server (hanging up earlier would leave
	// some never sent, on a slow machine) and the pool is taken by those waiting
	// for the lock, then hang up.
	waitFor(t, "all 50 requests inside the server, the pool's waiting for the lock", func() bool {
		var n int
		if err := admin.GetContext(ctx, &n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM organizations o WHERE o.id = $1 FOR NO KEY UPDATE%'`); err != nil {
			t.Fatal(err)
		}
		return srv.InFlight() >= 50 && n >= 10
	})
	hangUp()
	wg.Wait()
	// Release the lock only once the server has seen all 50 hang up: a request
	// released earlier can finish before the server reads the closed connection.
	waitFor(t, "the server to see the 50 clients go away", func() bool {
		return srv.ClientsGone()-goneBefore >= 50
	})
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	// The server finishes all 50 (each writes its access-log line last).
	waitFor(t, "the 50 abandoned requests to finish", func() bool {
		return strings.Count(srv.Logs()[logStart:], "operation=DisconnectProbe") >= 50
	})
	// Every one of the 20 connections was taken while the lock was held; a
	// cancelled statement would have closed its own.
	open := srv.DB.Stats().OpenConnections
	if max := srv.DB.Stats().MaxOpenConnections; open != max {
		t.Errorf("the pool has %d of its %d connections after the disconnects", open, max)
	}
	var mark time.Time
	if err := admin.GetContext(ctx, &mark, `SELECT now()`); err != nil {
		t.Fatal(err)
	}

	// 100 more requests, 20 at a time (the pool's size), all fine, on the same connections.
	var fail sync.Mutex
	failures := 0
	var next sync.WaitGroup
	for range 20 {
		next.Go(func() {
			for range 5 {
				r := srv.Post(t, owner.AccessToken, `query($o: ID!) { organization(orgId: $o) { name memberCount } }`, map[string]any{"o": org})
				if len(r.Errors) > 0 {
					fail.Lock()
					failures++
					fail.Unlock()
				}
			}
		})
	}
	next.Wait()
	if failures > 0 {
		t.Fatalf("%d of the next 100 requests failed", failures)
	}
	if now := srv.DB.Stats().OpenConnections; now != open {
		t.Errorf("the pool went from %d to %d connections over the next 100 requests", open, now)
	}
	// Directly on PostgreSQL, no new server process either. (Behind PgBouncer
	// the server processes are PgBouncer's, which may open one more for the
	// sealer's poll next to 20 requests: the pool's figures above suffice.)
	if os.Getenv(dbtest.PgBouncerSetting) == "" {
		var fresh int
		if err := admin.GetContext(ctx, &fresh, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND backend_start > $1 AND pid <> pg_backend_pid()`, mark); err != nil {
			t.Fatal(err)
		}
		if fresh > 0 {
			t.Fatalf("the server opened %d new connections after the disconnects (pool had %d open)", fresh, open)
		}
	}

	logs := srv.Logs()[logStart:]
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "operation=DisconnectProbe") && !strings.Contains(line, "status=499") {
			t.Errorf("an abandoned request logged without status 499: %s", line)
		}
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("an error logged around the disconnects: %s", line)
		}
	}
	t.Logf("pool: %d open after the disconnects, 0 new for the next 100 requests", open)
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
