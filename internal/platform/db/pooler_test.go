package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

// TestUnnamedStatementsSurviveTransactionPooling: with prepared statements off,
// statements with arguments run outside a transaction from more clients than
// there are server connections. Under make test-pgbouncer the pools go through
// PgBouncer in transaction mode, which hands a server connection to another
// client whenever one is idle: a statement parsed in one round trip and bound
// in the next (Parse/Describe/Sync, then Bind/Execute/Sync) then fails with
// "unnamed prepared statement does not exist" or runs with another's
// arguments. db.Open sends each in one round trip.
func TestUnnamedStatementsSurviveTransactionPooling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := dbtest.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if d.URL == d.DirectURL {
		t.Log("not through PgBouncer here (make test-pgbouncer runs it so)")
	}
	// Two pools of 20: 40 clients for PgBouncer's 20 server connections.
	var pools []*sqlx.DB
	for range 2 {
		p, err := db.Open(ctx, d.URL, db.Options{NoPrepare: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		pools = append(pools, p)
	}
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			p := pools[g%2]
			for i := range 50 {
				var got int
				if err := p.GetContext(ctx, &got, `SELECT $1::int * 1000 + $2::int`, g, i); err != nil {
					t.Errorf("client %d, call %d: %v", g, i, err)
					return
				}
				if got != g*1000+i {
					t.Errorf("client %d, call %d: got %d, want %d", g, i, got, g*1000+i)
					return
				}
			}
		})
	}
	wg.Wait()
}
