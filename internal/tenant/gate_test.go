package tenant_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/tenant"
)

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

// recorder counts the audit entries a gate records, in memory: these tests are
// about the gate's transactions, not the audit area's table.
type recorder struct{ n atomic.Int64 }

func (r *recorder) Record(context.Context, sqlx.ExecerContext, tenant.Entry) error {
	r.n.Add(1)
	return nil
}

// member commits an organization with one member of role and returns both ids.
func member(t *testing.T, role tenant.Role) (org, user uuid.UUID) {
	t.Helper()
	user = dbtest.NewUser(t, database.DB)
	tx := database.DB.MustBegin()
	defer tx.Rollback() //nolint:errcheck
	org = dbtest.NewOrgTx(t, tx)
	owner := user
	if role != tenant.RoleOwner {
		owner = dbtest.NewUser(t, tx)
		dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)`, org, user, role)
	}
	dbtest.Exec(t, tx, `INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, owner)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return org, user
}

// TestGateChecksTheRoleInItsTransaction: not a member is NOT_FOUND, a lower
// role FORBIDDEN, and neither runs the callback.
func TestGateChecksTheRoleInItsTransaction(t *testing.T) {
	t.Parallel()
	g := tenant.NewGate(database.DB, time.Now, &recorder{})
	org, user := member(t, tenant.RoleMember)
	for _, c := range []struct {
		name  string
		actor uuid.UUID
		need  tenant.Role
		code  apperr.Code
	}{
		{"stranger", uuid.New(), tenant.RoleMember, apperr.NotFound},
		{"member asks for admin", user, tenant.RoleAdmin, apperr.Forbidden},
	} {
		ran := false
		err := g.Run(context.Background(), c.actor, org, c.need, tenant.LockActor, func(*tenant.Tx) error { ran = true; return nil })
		if e, ok := apperr.As(err); !ok || e.Code != c.code || ran {
			t.Errorf("%s: %v (callback ran: %v), want %s", c.name, err, ran, c.code)
		}
	}
}

// TestGateRetriesADeadlock forces a deadlock between two gated transactions
// (each updates one row, then the other's): PostgreSQL aborts one, the gate
// runs it again from the start, and both commit. Each row ends incremented
// exactly twice: the aborted attempt's write was rolled back, the retry's kept.
// It takes PostgreSQL's deadlock_timeout (1 s) to find the deadlock.
func TestGateRetriesADeadlock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probe := "deadlock_probe_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	dbtest.Exec(t, database.DB, `CREATE TABLE `+probe+` (id int PRIMARY KEY, n int NOT NULL)`)
	t.Cleanup(func() { dbtest.Exec(t, database.DB, `DROP TABLE `+probe) })
	dbtest.Exec(t, database.DB, `INSERT INTO `+probe+` VALUES (1, 0), (2, 0)`)
	rec := &recorder{}
	g := tenant.NewGate(database.DB, time.Now, rec)
	org, user := member(t, tenant.RoleMember)

	var attempts atomic.Int64
	var holding sync.WaitGroup // both hold their first row
	holding.Add(2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, order := range [][2]int{{1, 2}, {2, 1}} {
		var first atomic.Bool
		first.Store(true)
		wg.Go(func() {
			errs[i] = g.Run(ctx, user, org, tenant.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
				attempts.Add(1)
				if _, err := tx.ExecContext(ctx, `UPDATE `+probe+` SET n = n + 1 WHERE id = $1`, order[0]); err != nil {
					return err
				}
				if first.Swap(false) {
					holding.Done()
					holding.Wait()
				}
				if _, err := tx.ExecContext(ctx, `UPDATE `+probe+` SET n = n + 1 WHERE id = $1`, order[1]); err != nil {
					return err
				}
				return tx.Audit(ctx, "test.deadlock", "probe", "", nil)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3 (one deadlock victim run again)", n)
	}
	var ns []int
	if err := database.DB.Select(&ns, `SELECT n FROM `+probe+` ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0] != 2 || ns[1] != 2 {
		t.Fatalf("rows after the retried deadlock: %v, want [2 2]", ns)
	}
}

// TestGateRetriesOnlyWhatPostgreSQLRolledBack: a serialization failure is run
// again up to db.Retry.Attempts times and then CONFLICT; any other error once.
func TestGateRetriesOnlyWhatPostgreSQLRolledBack(t *testing.T) {
	t.Parallel()
	g := tenant.NewGate(database.DB, time.Now, &recorder{})
	org, user := member(t, tenant.RoleMember)
	run := func(fail error) (int, error) {
		calls := 0
		err := g.Run(context.Background(), user, org, tenant.RoleMember, tenant.LockActor, func(*tenant.Tx) error {
			calls++
			return fail
		})
		return calls, err
	}
	calls, err := run(&pq.Error{Code: db.SerializationFail})
	if e, ok := apperr.As(err); calls != db.Retry.Attempts || !ok || e.Code != apperr.Conflict {
		t.Fatalf("always a serialization failure: %d calls, %v; want %d calls and CONFLICT", calls, err, db.Retry.Attempts)
	}
	other := errors.New("boom")
	if calls, err := run(other); calls != 1 || !errors.Is(err, other) {
		t.Fatalf("another error: %d calls, %v; want 1 call and the error", calls, err)
	}
	if calls, err := run(apperr.New(apperr.Conflict, "taken")); calls != 1 || err == nil {
		t.Fatalf("a client error: %d calls, %v; want 1 call", calls, err)
	}
}

// TestIdempotencyKeysAreSwept: the sweep deletes expired keys of every
// organization and keeps live ones.
func TestIdempotencyKeysAreSwept(t *testing.T) {
	t.Parallel()
	org, user := member(t, tenant.RoleMember)
	put := func(key string, at time.Time) {
		t.Helper()
		clock := tenant.NewGate(database.DB, func() time.Time { return at }, &recorder{})
		err := clock.Run(context.Background(), user, org, tenant.RoleMember, tenant.LockActor, func(tx *tenant.Tx) error {
			_, err := tenant.Once(context.Background(), tx, &key, "test.op", key, func() (string, error) { return "done", nil })
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	put("old-"+uuid.NewString(), now.Add(-25*time.Hour))
	live := "live-" + uuid.NewString()
	put(live, now.Add(-23*time.Hour))
	if _, err := tenant.SweepKeys(context.Background(), database.DB, now); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := database.DB.Select(&keys, `SELECT key FROM idempotency_keys WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != live {
		t.Fatalf("keys after the sweep: %v, want only %s", keys, live)
	}
}
