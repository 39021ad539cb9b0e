package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// heldLock is a transaction holding row locks that requests then wait on:
// a request made slow on purpose, for as long as a test needs.
type heldLock struct {
	tx  *sqlx.Tx
	pid int
}

// holdLock runs lock (a SELECT ... FOR UPDATE) in a transaction it keeps
// open until release or the test's end.
func holdLock(t *testing.T, lock string, args ...any) *heldLock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	tx, err := srv.DB.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() }) //nolint:errcheck // after release, a no-op
	h := &heldLock{tx: tx}
	if err := tx.Get(&h.pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(lock, args...); err != nil {
		t.Fatal(err)
	}
	return h
}

// waiters counts the backends waiting on the lock, or on one that waits on it
// (a second waiter for a row queues behind the first).
func (h *heldLock) waiters(t *testing.T) int {
	t.Helper()
	var k int
	if err := srv.DB.Get(&k, `
		WITH RECURSIVE w(pid) AS (
			SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
			UNION SELECT a.pid FROM pg_stat_activity a JOIN w ON w.pid = ANY(pg_blocking_pids(a.pid)))
		SELECT count(*) FROM w`, h.pid); err != nil {
		t.Fatal(err)
	}
	return k
}

// release rolls the transaction back: the waiting requests go on.
func (h *heldLock) release(t *testing.T) {
	t.Helper()
	if err := h.tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}
