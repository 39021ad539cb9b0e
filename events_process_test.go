package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/config"
)

// TestEventsAcrossTwoServerProcesses: two `tenantgraph serve` processes on
// one database, two graphql-transport-ws subscribers (coder/websocket) on
// each, customers created through both at once. Every subscriber receives
// every event exactly once, all in one (commit) order, within a second of
// its change's response; on SIGTERM a process closes its sockets (1000), and
// a client resuming on the other process with its last cursor misses nothing.
func TestEventsAcrossTwoServerProcesses(t *testing.T) {
	const secret = "3c9b1f0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
	env := []string{"DATABASE_URL=" + database.URL, "DATABASE_DIRECT_URL=" + database.DirectURL, "HTTP_ADDR=127.0.0.1:0",
		"MAIL_DRIVER=file", "MAIL_DIR=" + t.TempDir(), "JWT_SECRET=" + secret}
	servers := make([]*apitest.Server, 2)
	stops := make([]func(), 2)
	for i := range servers {
		log, stop := started(t, env...)
		stops[i] = stop
		var line struct{ Addr string }
		if err := json.Unmarshal([]byte(log[len(log)-1]), &line); err != nil || line.Addr == "" {
			t.Fatalf("no address in the serving line %q", log[len(log)-1])
		}
		servers[i] = &apitest.Server{URL: "http://" + line.Addr}
	}
	defer func() {
		if stops[1] != nil {
			stops[1]()
		}
	}()

	// A member of an organization, straight into the database, and an access
	// token signed with the processes' key.
	var user, org uuid.UUID
	tx := database.DB.MustBegin()
	if err := tx.Get(&user, `INSERT INTO users (email, name, password_hash) VALUES ($1, 'U', '$argon2id$x') RETURNING id`,
		uuid.NewString()+"@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Get(&org, `INSERT INTO organizations (name, slug) VALUES ('Two processes', $1) RETURNING id`, "tp-"+uuid.NewString()[:8]); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'OWNER')`, org, user); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]auth.Key{{ID: config.DefaultKeyID, Secret: []byte(secret)}}, 15*time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := tokens.Issue(user, uuid.New())
	if err != nil {
		t.Fatal(err)
	}

	var cursor struct{ Organization struct{ EventsCursor string } }
	apitest.MustOK(t, servers[0].Post(t, token, `query($o: ID!) { organization(orgId: $o) { eventsCursor } }`, map[string]any{"o": org})).Decode(t, &cursor)
	const sub = `subscription($o: ID!, $a: String) { organizationEvents(orgId: $o, after: $a) { cursor action targetId } }`
	var subs []*apitest.WS
	for i := range 4 {
		w := servers[i%2].MustDialWS(t, token)
		w.Subscribe(t, "e", sub, map[string]any{"o": org, "a": cursor.Organization.EventsCursor})
		subs = append(subs, w)
	}

	type event struct{ Cursor, Action, TargetID string }
	next := func(w *apitest.WS) event {
		t.Helper()
		m, err := w.Next(5 * time.Second)
		if err != nil || m.Type != "next" {
			t.Fatalf("want an event, got %+v %v", m, err)
		}
		var out struct{ OrganizationEvents event }
		if err := json.Unmarshal(m.Response(t).Data, &out); err != nil {
			t.Fatal(err)
		}
		return out.OrganizationEvents
	}
	create := func(s *apitest.Server, name string) string {
		var out struct{ CreateCustomer struct{ ID string } }
		apitest.MustOK(t, s.Post(t, token, `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`,
			map[string]any{"o": org, "n": name})).Decode(t, &out)
		return out.CreateCustomer.ID
	}

	const n = 20
	var mu sync.Mutex
	answered := map[string]time.Time{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := create(servers[i%2], fmt.Sprint("C", i))
			mu.Lock()
			answered[id] = time.Now()
			mu.Unlock()
		})
	}
	got := make([][]event, len(subs))
	at := make([]map[string]time.Time, len(subs))
	var rg sync.WaitGroup
	for i, w := range subs {
		at[i] = map[string]time.Time{}
		rg.Go(func() {
			for range n {
				e := next(w)
				at[i][e.TargetID] = time.Now()
				got[i] = append(got[i], e)
			}
		})
	}
	wg.Wait()
	rg.Wait()
	for i := range subs {
		seen := map[string]bool{}
		for j, e := range got[i] {
			if e.Action != "customer.created" || seen[e.TargetID] || e.Cursor != got[0][j].Cursor || e.TargetID != got[0][j].TargetID {
				t.Fatalf("subscriber %d, event %d: %+v; subscriber 0's: %+v", i, j, e, got[0][j])
			}
			seen[e.TargetID] = true
			if lag := at[i][e.TargetID].Sub(answered[e.TargetID]); lag > time.Second {
				t.Errorf("subscriber %d received %s %s after its change was answered", i, e.TargetID, lag)
			}
		}
		if m, err := subs[i].Next(200 * time.Millisecond); err == nil {
			t.Errorf("subscriber %d: one more message %s %s", i, m.Type, m.Payload)
		}
	}

	// SIGTERM to the second process: its sockets close normally; their
	// clients resume on the first with their last cursor.
	stops[1]()
	stops[1] = nil
	for _, i := range []int{1, 3} {
		select {
		case <-subs[i].Done():
			if _, err := subs[i].Next(time.Millisecond); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Errorf("subscriber %d's socket ended with %v, want a normal closure", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("subscriber %d's socket still open after its server stopped", i)
		}
	}
	last := got[1][n-1].Cursor
	late := create(servers[0], "After the restart")
	w := servers[0].MustDialWS(t, token)
	w.Subscribe(t, "e", sub, map[string]any{"o": org, "a": last})
	if e := next(w); e.TargetID != late || !strings.HasPrefix(e.Action, "customer.") {
		t.Fatalf("resumed with %+v, want the customer created meanwhile %s", e, late)
	}
	stops[0]()
}
