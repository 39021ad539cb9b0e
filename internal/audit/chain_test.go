package audit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"tenantgraph/internal/platform/db"
)

// insertEvent appends an event of org in its own committed transaction and returns its id.
func insertEvent(t *testing.T, org uuid.UUID, action string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := database.DB.Get(&id, `INSERT INTO audit_events (organization_id, action, metadata) VALUES ($1, $2, '{"n": 1}') RETURNING id`,
		org, action); err != nil {
		t.Fatal(err)
	}
	return id
}

func seal(t *testing.T, org uuid.UUID) int {
	t.Helper()
	n, err := Store{}.Seal(context.Background(), database.DB, org)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// chainOrder returns org's sealed event ids in chain order.
func chainOrder(t *testing.T, org uuid.UUID) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	if err := database.DB.Select(&ids, `SELECT event_id FROM audit_chain WHERE organization_id = $1 ORDER BY seq`, org); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestSealChainsInCommitOrder: an event inserted first but committed after a
// later one was sealed gets the next chain number, so a reader resuming after
// the later one's number still gets it (audit_events.seq, given at insert,
// would have skipped it).
func TestSealChainsInCommitOrder(t *testing.T) {
	t.Parallel()
	org, _ := newOrg(t)
	seal(t, org) // what creating the organization recorded, if anything
	base := len(chainOrder(t, org))

	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	var early uuid.UUID
	if err := tx.Get(&early, `INSERT INTO audit_events (organization_id, action) VALUES ($1, 'test.early') RETURNING id`, org); err != nil {
		t.Fatal(err)
	}
	late := insertEvent(t, org, "test.late") // a higher seq, committed first
	if n := seal(t, org); n != 1 {
		t.Fatalf("sealed %d events while the early one was uncommitted, want 1", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := seal(t, org); n != 1 {
		t.Fatalf("sealed %d events after the early one committed, want 1", n)
	}
	got := chainOrder(t, org)[base:]
	if len(got) != 2 || got[0] != late || got[1] != early {
		t.Fatalf("chain order %v, want the late-inserted %s then the late-committed %s", got, late, early)
	}
	i, err := Store{}.Verify(context.Background(), database.DB, org)
	if err != nil || i.Broken() || i.Checked != int64(base+2) || i.Unsealed != 0 {
		t.Fatalf("verify = %+v, %v", i, err)
	}
}

// TestVerifyNamesTheTamperedEvent: an event changed in the database after it
// was sealed (by the table's owner, with the append-only trigger off) breaks
// exactly its own link: the verification names it and the last good link
// before it; the chain refuses changes of its own.
func TestVerifyNamesTheTamperedEvent(t *testing.T) {
	t.Parallel()
	org, _ := newOrg(t)
	var ids []uuid.UUID
	for range 5 {
		ids = append(ids, insertEvent(t, org, "test.event"))
	}
	seal(t, org)
	chain := chainOrder(t, org)
	pos := -1
	for i, id := range chain {
		if id == ids[2] {
			pos = i
		}
	}
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	for _, q := range []string{
		`SET LOCAL session_replication_role = replica`,
		`UPDATE audit_events SET metadata = '{"n": 2}' WHERE organization_id = '` + org.String() + `' AND id = '` + ids[2].String() + `'`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	i, err := Store{}.Verify(context.Background(), database.DB, org)
	if err != nil {
		t.Fatal(err)
	}
	if !i.Broken() || *i.BrokenEventID != ids[2] || *i.BrokenSeq != int64(pos+1) || i.LastVerified != int64(pos) {
		t.Fatalf("verify = %+v (broken %v at %v), want event %s at link %d", i, i.BrokenEventID, i.BrokenSeq, ids[2], pos+1)
	}
	var broken []uuid.UUID
	checked, n, err := VerifyAll(context.Background(), database.DB, []uuid.UUID{org}, func(o uuid.UUID, i *Integrity) {
		if i.Broken() {
			broken = append(broken, *i.BrokenEventID)
		}
	})
	if err != nil || checked != 1 || n != 1 || len(broken) != 1 || broken[0] != ids[2] {
		t.Fatalf("VerifyAll: %d checked, %d broken %v, %v", checked, n, broken, err)
	}
	_, err = database.DB.Exec(`UPDATE audit_chain SET sealed_at = now() WHERE organization_id = $1`, org)
	if err == nil {
		t.Fatal("the chain accepted an update")
	}
}

// TestSealersOfOneOrganizationTakeTurns: concurrent sealers chain each event
// once, in one unbroken chain.
func TestSealersOfOneOrganizationTakeTurns(t *testing.T) {
	t.Parallel()
	org, _ := newOrg(t)
	for range 30 {
		insertEvent(t, org, "test.event")
	}
	done := make(chan int, 4)
	for range 4 {
		go func() {
			n, err := Store{}.Seal(context.Background(), database.DB, org)
			if err != nil {
				t.Error(err)
			}
			done <- n
		}()
	}
	total := 0
	for range 4 {
		select {
		case n := <-done:
			total += n
		case <-time.After(10 * time.Second):
			t.Fatal("a sealer hung")
		}
	}
	i, err := Store{}.Verify(context.Background(), database.DB, org)
	if err != nil || i.Broken() || i.Checked != int64(total) || i.Unsealed != 0 || total < 30 {
		t.Fatalf("4 sealers sealed %d; verify = %+v, %v", total, i, err)
	}
}

// TestSealerOutlastsTheStatementTimeout: a seal that runs past the pool's
// statement timeout (here it waits for another session holding the
// organization's sealing lock, as a long backlog's seal would run long) is
// cut once, then runs again without the timeout and seals, however long it
// takes; an ordinary seal is one statement.
func TestSealerOutlastsTheStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const timeout = 100 * time.Millisecond
	// Straight to PostgreSQL: the startup parameter holds there in both modes.
	p, err := db.Open(ctx, database.DirectURL, db.Options{StatementTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	s := NewSealer(p, slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil)))
	org, _ := newOrg(t)
	insertEvent(t, org, "test.event")
	c := &db.Counter{}
	s.seal(db.WithCounter(ctx, c), org)
	if n := c.Load(); n != 1 || len(chainOrder(t, org)) != 1 {
		t.Fatalf("an ordinary seal: %d statements, %d sealed; want 1 and 1", n, len(chainOrder(t, org)))
	}

	insertEvent(t, org, "test.event")
	holder, err := database.DB.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback() //nolint:errcheck
	if _, err := holder.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('audit_seal:' || $1::text, 0))`, org); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.seal(ctx, org)
	}()
	// The second attempt, in a transaction, waits past three timeouts.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting bool
		if err := database.DB.Get(&waiting, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE query LIKE '%audit_seal%' AND wait_event_type = 'Lock' AND xact_start < query_start
			AND now() - query_start > $1 * interval '1 ms')`, 3*timeout.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("no seal waiting without the statement timeout; logs: %s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the seal did not end once the lock was released")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := len(chainOrder(t, org)); got != 2 || !strings.Contains(logs.String(), "level=WARN msg=\"sealing a backlog") || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("%d sealed, want 2; logs: %s", got, logs)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
