package app_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"tenantgraph/graph"
	"tenantgraph/internal/account"
	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/auth"
)

const eventsSub = `subscription($org: ID!, $after: String, $types: [String!]) {
  organizationEvents(orgId: $org, after: $after, types: $types) {
    cursor action occurredAt targetType targetId actor { id }
    subject { __typename ... on Customer { id name } ... on Order { id number status } ... on Member { role user { id } }
      ... on Invitation { id email } ... on Product { id sku } ... on Organization { id name } }
  }
}`

// event is one organizationEvents payload.
type event struct {
	Cursor, Action, TargetType, TargetID string
	Subject                              map[string]any
}

// nextEvent reads id's next event on w, failing on anything else or after d.
func nextEvent(t *testing.T, w *WS, id string, d time.Duration) event {
	t.Helper()
	m, err := w.Next(d)
	if err != nil {
		t.Fatalf("waiting for an event of %s: %v", id, err)
	}
	if m.Type != "next" || m.ID != id {
		t.Fatalf("want next of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	r := m.Response(t)
	if len(r.Errors) > 0 {
		t.Fatalf("event with errors: %s", r.Raw)
	}
	var out struct{ OrganizationEvents event }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out.OrganizationEvents
}

func createCustomer(t testing.TB, s *Server, token string, org uuid.UUID, name string) uuid.UUID {
	t.Helper()
	r := MustOK(t, s.Post(t, token, `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`,
		map[string]any{"o": org, "n": name}))
	var out struct{ CreateCustomer struct{ ID uuid.UUID } }
	r.Decode(t, &out)
	return out.CreateCustomer.ID
}

// eventsCursor reads the organization's newest event cursor (to subscribe
// from a known point: no race with the subscription's start).
func eventsCursor(t testing.TB, s *Server, token string, org uuid.UUID) string {
	t.Helper()
	// The events of the set-up just committed are sealed a moment later (the
	// poke after the commit): a cursor read before would replay them.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := s.DB.Get(&n, `SELECT count(*) FROM audit_unsealed WHERE organization_id = $1`, org); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events of the organization still unsealed after 20 s", n)
		}
	}
	r := MustOK(t, s.Post(t, token, `query($o: ID!) { organization(orgId: $o) { eventsCursor } }`, map[string]any{"o": org}))
	var out struct{ Organization struct{ EventsCursor string } }
	r.Decode(t, &out)
	return out.Organization.EventsCursor
}

// subscribeFrom subscribes id on w to org's events after the newest one.
func subscribeFrom(t *testing.T, s *Server, w *WS, token, id string, org uuid.UUID, types ...string) {
	t.Helper()
	vars := map[string]any{"org": org, "after": eventsCursor(t, s, token, org)}
	if len(types) > 0 {
		vars["types"] = types
	}
	w.Subscribe(t, id, eventsSub, vars)
}

// events reads n events of id on w, each within d.
func events(t *testing.T, w *WS, id string, n int, d time.Duration) []event {
	t.Helper()
	out := make([]event, n)
	for i := range out {
		out[i] = nextEvent(t, w, id, d)
	}
	return out
}

// quiet fails when w receives anything within d.
func quiet(t *testing.T, w *WS, d time.Duration) {
	t.Helper()
	if m, err := w.Next(d); err == nil {
		t.Fatalf("unexpected message: %s %s %s", m.Type, m.ID, m.Payload)
	}
}

// endsWith waits up to d for id's error message on w and returns its code.
func endsWith(t *testing.T, w *WS, id string, d time.Duration) (code string, ext map[string]any) {
	t.Helper()
	m, err := w.Next(d)
	if err != nil {
		t.Fatalf("waiting for the end of %s: %v", id, err)
	}
	if m.ID != id {
		t.Fatalf("want the end of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	switch m.Type {
	case "error":
		errs := m.Errors(t)
		c, _ := errs[0].Extensions["code"].(string)
		return c, errs[0].Extensions
	case "next":
		r := m.Response(t)
		if len(r.Errors) == 0 {
			t.Fatalf("want the end of %s, got an event %s", id, r.Raw)
		}
		return r.Code(), r.Errors[0].Extensions
	}
	t.Fatalf("want the end of %s, got %s %s", id, m.Type, m.Payload)
	return "", nil
}

func closeCode(err error) websocket.StatusCode { return websocket.CloseStatus(err) }

// TestEventsSocketHandshake: connection_init takes the access token with or
// without Bearer; a missing, bad or revoked one closes the socket with 4403
// (a graphql-ws client does not retry); a page of another origin is refused
// before any websocket exists; only subscriptions run over the socket, and
// subscriptions only there.
func TestEventsSocketHandshake(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "ws-hello")
	org := srv.CreateOrg(t, owner, "Handshake")
	for name, init := range map[string]map[string]any{
		"none": {}, "empty": {"authorization": ""}, "bad": {"authorization": "Bearer nope"},
		"refresh token": {"authorization": "Bearer " + owner.RefreshToken},
	} {
		_, err := srv.DialWS(t, "", WSOptions{Init: init})
		if closeCode(err) != 4403 {
			t.Errorf("%s token: %v, want close 4403", name, err)
		}
	}
	if _, err := srv.DialWS(t, "", WSOptions{Init: map[string]any{"authorization": owner.AccessToken}}); err != nil {
		t.Errorf("a bare token: %v", err)
	}
	if _, err := srv.DialWS(t, owner.AccessToken, WSOptions{Origin: "https://evil.example"}); !errors.As(err, new(*UpgradeError)) ||
		err.(*UpgradeError).Status != http.StatusForbidden {
		t.Errorf("another origin: %v, want 403", err)
	}
	if _, err := srv.DialWS(t, owner.AccessToken, WSOptions{Origin: srv.URL}); err != nil {
		t.Errorf("the server's own origin (the explorer): %v", err)
	}

	w := srv.MustDialWS(t, owner.AccessToken)
	w.Subscribe(t, "q", `{ me { id } }`, nil)
	if code, _ := endsWith(t, w, "q", 5*time.Second); code != "BAD_USER_INPUT" {
		t.Errorf("a query over the socket: %s", code)
	}
	stranger := srv.RegisterVerified(t, "ws-stranger")
	ws := srv.MustDialWS(t, stranger.AccessToken)
	ws.Subscribe(t, "s", eventsSub, map[string]any{"org": org})
	if code, _ := endsWith(t, ws, "s", 5*time.Second); code != "NOT_FOUND" {
		t.Errorf("a stranger's subscription: %s, want NOT_FOUND", code)
	}
	r := srv.Post(t, owner.AccessToken, eventsSub, map[string]any{"org": org})
	if r.Code() != "BAD_USER_INPUT" {
		t.Errorf("a subscription over HTTP: %s", r.Raw)
	}
}

// TestEventsResumeWithoutGapDuring200Orders: a subscriber loses its
// connection while 200 orders are being created through two replicas, and
// resumes on the other replica after the last cursor it received: what it
// received before and after is every order.created exactly once, in order.
func TestEventsResumeWithoutGapDuring200Orders(t *testing.T) {
	t.Parallel()
	replica := srv.Replica(t, ReplicaOptions{})
	owner := srv.RegisterVerified(t, "ws-resume")
	org := srv.CreateOrg(t, owner, "Resume")
	r := MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!) { createProduct(orgId: $o, input: {sku: "S", name: "S", price: "100", trackInventory: false}) { id } }`,
		map[string]any{"o": org}))
	var p struct{ CreateProduct struct{ ID uuid.UUID } }
	r.Decode(t, &p)
	customer := createCustomer(t, srv, owner.AccessToken, org, "Buyer")

	w := srv.MustDialWS(t, owner.AccessToken)
	subscribeFrom(t, srv, w, owner.AccessToken, "o", org, "order.created")
	const n = 200
	created := make(chan string, n)
	var wg sync.WaitGroup
	for g := range 4 {
		s := []*Server{srv, replica}[g%2]
		wg.Go(func() {
			for range n / 4 {
				r := MustOK(t, s.Post(t, owner.AccessToken, `mutation($o: ID!, $in: CreateOrderInput!) { createOrder(orgId: $o, input: $in) { id } }`,
					map[string]any{"o": org, "in": map[string]any{"customerId": customer, "lines": []any{map[string]any{"productId": p.CreateProduct.ID, "quantity": 1}}}}))
				var out struct{ CreateOrder struct{ ID string } }
				r.Decode(t, &out)
				created <- out.CreateOrder.ID
			}
		})
	}
	var got []event
	for range 50 {
		got = append(got, nextEvent(t, w, "o", 5*time.Second))
	}
	w.CloseNow() // the connection is cut
	last := got[len(got)-1].Cursor
	w2 := replica.MustDialWS(t, owner.AccessToken)
	w2.Subscribe(t, "o", eventsSub, map[string]any{"org": org, "after": last, "types": []string{"order.*"}})
	for len(got) < n {
		got = append(got, nextEvent(t, w2, "o", 5*time.Second))
	}
	wg.Wait()
	close(created)
	quiet(t, w2, 200*time.Millisecond)
	seen := map[string]int{}
	for i, e := range got {
		if e.Action != "order.created" {
			t.Fatalf("event %d: %s", i, e.Action)
		}
		seen[e.TargetID]++
		if i > 0 && e.Cursor == got[i-1].Cursor {
			t.Fatalf("event %d repeats the cursor before it", i)
		}
	}
	for id := range created {
		if seen[id] != 1 {
			t.Errorf("order %s received %d times, want once", id, seen[id])
		}
	}
}

// TestEventsFollowAccess: a member removed while subscribed gets NOT_FOUND
// within a second, and no event committed after the removal; an ADMIN
// demoted to MEMBER stops receiving invitation events (ADMIN-only), which a
// MEMBER never receives.
func TestEventsFollowAccess(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "ws-acc")
	org := srv.CreateOrg(t, owner, "Access")
	admin := srv.AddMember(t, owner, org, "ADMIN", "ws-acc-a")
	member := srv.AddMember(t, owner, org, "MEMBER", "ws-acc-m")
	wa, wm := srv.MustDialWS(t, admin.AccessToken), srv.MustDialWS(t, member.AccessToken)
	subscribeFrom(t, srv, wa, admin.AccessToken, "a", org)
	subscribeFrom(t, srv, wm, member.AccessToken, "m", org)

	srv.Invite(t, owner, org, UniqueEmail("ws-acc-i1"), "MEMBER")
	if e := nextEvent(t, wa, "a", 2*time.Second); e.Action != "member.invited" || e.Subject["__typename"] != "Invitation" {
		t.Fatalf("admin got %+v, want member.invited with its Invitation", e)
	}
	createCustomer(t, srv, owner.AccessToken, org, "Marker 1")
	if e := nextEvent(t, wm, "m", 2*time.Second); e.Action != "customer.created" {
		t.Fatalf("member got %+v before the marker, want no invitation event", e)
	}
	nextEvent(t, wa, "a", 2*time.Second)

	MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!, $u: ID!) { changeMemberRole(orgId: $o, userId: $u, role: MEMBER) { role } }`,
		map[string]any{"o": org, "u": admin.UserID}))
	srv.Invite(t, owner, org, UniqueEmail("ws-acc-i2"), "MEMBER")
	createCustomer(t, srv, owner.AccessToken, org, "Marker 2")
	for _, want := range []string{"member.role_changed", "customer.created"} {
		if e := nextEvent(t, wa, "a", 2*time.Second); e.Action != want {
			t.Fatalf("demoted admin got %s, want %s (no invitation after the demotion)", e.Action, want)
		}
	}

	MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`,
		map[string]any{"o": org, "u": member.UserID}))
	removed := time.Now()
	createCustomer(t, srv, owner.AccessToken, org, "After the removal")
	for range 2 { // the role change and marker 2 came before
		nextEvent(t, wm, "m", 2*time.Second)
	}
	if code, _ := endsWith(t, wm, "m", time.Second); code != "NOT_FOUND" {
		t.Fatalf("removed member: %s, want NOT_FOUND", code)
	}
	if d := time.Since(removed); d > time.Second {
		t.Errorf("the removed member's subscription ended %s after the removal", d)
	}
	quiet(t, wm, 300*time.Millisecond)
}

// TestEventsEndWithTheSession: ending a session (logout, here on the other
// replica) closes its sockets within a second, and its token opens no new
// one; a subscription ends with UNAUTHENTICATED when its token expires.
func TestEventsEndWithTheSession(t *testing.T) {
	t.Parallel()
	replica := srv.Replica(t, ReplicaOptions{})
	owner := srv.RegisterVerified(t, "ws-sess")
	org := srv.CreateOrg(t, owner, "Sessions")
	w := replica.MustDialWS(t, owner.AccessToken)
	subscribeFrom(t, srv, w, owner.AccessToken, "e", org)
	other := srv.Login(t, owner.Email, owner.Password) // another session of the same user
	wo := replica.MustDialWS(t, other.Access)

	MustOK(t, srv.Post(t, "", `mutation($r: String!) { logout(refreshToken: $r) }`, map[string]any{"r": owner.RefreshToken}))
	ended := time.Now()
	select {
	case <-w.Done():
		t.Logf("socket closed %s after the logout", time.Since(ended).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("the socket of the ended session is still open a second after the logout")
	}
	if _, err := replica.DialWS(t, owner.AccessToken, WSOptions{}); closeCode(err) != 4403 {
		t.Errorf("the ended session's token opened a socket: %v", err)
	}
	select {
	case <-wo.Done():
		t.Fatal("the other session's socket closed too")
	case <-time.After(100 * time.Millisecond):
	}

	// A token that expires in 1 to 2 seconds (issued 30 s ago, inside the
	// leeway; its times are whole seconds, so a TTL of one second left it 0 to
	// 1 s to live, and a slow dial could find it expired already).
	tokens, err := auth.NewTokens([]auth.Key{{ID: KeyID, Secret: []byte(Secret)}}, 2*time.Second,
		func() time.Time { return time.Now().Add(-auth.Leeway) })
	if err != nil {
		t.Fatal(err)
	}
	short, _, err := tokens.Issue(owner.UserID, sessionOf(t, other.Access))
	if err != nil {
		t.Fatal(err)
	}
	ws := srv.MustDialWS(t, short)
	ws.Subscribe(t, "x", eventsSub, map[string]any{"org": org})
	if code, _ := endsWith(t, ws, "x", 4*time.Second); code != "UNAUTHENTICATED" {
		t.Fatalf("expired token: %s, want UNAUTHENTICATED", code)
	}
}

// TestSubscriptionLimits: an eleventh subscription on one socket is refused
// (RATE_LIMITED, socket_subscriptions) and the ten go on; ending one frees
// its place.
func TestSubscriptionLimits(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "ws-lim")
	org := srv.CreateOrg(t, owner, "Limits")
	w := srv.MustDialWS(t, owner.AccessToken)
	after := eventsCursor(t, srv, owner.AccessToken, org)
	for i := range 11 {
		w.Subscribe(t, fmt.Sprint(i), eventsSub, map[string]any{"org": org, "after": after})
	}
	// The operations start concurrently: one of the eleven is refused.
	refused := ""
	for refused == "" {
		m, err := w.Next(2 * time.Second)
		if err != nil || m.Type != "next" {
			t.Fatalf("want one refusal, got %+v %v", m, err)
		}
		r := m.Response(t)
		if r.Code() != "RATE_LIMITED" {
			t.Fatalf("the 11th subscription: %s", r.Raw)
		}
		refused = m.ID
	}
	if m, err := w.Next(time.Second); err != nil || m.Type != "complete" || m.ID != refused {
		t.Fatalf("after the refusal: %+v %v", m, err)
	}
	stopped := "0"
	if refused == "0" {
		stopped = "1"
	}
	w.Stop(t, stopped)
	// gqlgen confirms the client's complete once the subscription has ended;
	// an event committed before the server read the complete would still go
	// to it.
	if m, err := w.Next(2 * time.Second); err != nil || m.Type != "complete" || m.ID != stopped {
		t.Fatalf("after stopping %s: %+v %v", stopped, m, err)
	}
	w.Subscribe(t, "11", eventsSub, map[string]any{"org": org, "after": after})
	createCustomer(t, srv, owner.AccessToken, org, "Everyone")
	got := map[string]bool{}
	for len(got) < 10 {
		m, err := w.Next(2 * time.Second)
		if err != nil || m.Type != "next" {
			t.Fatalf("%+v %v", m, err)
		}
		got[m.ID] = true
	}
	if got[stopped] || got[refused] || !got["11"] {
		t.Fatalf("events went to %v: want every one but %s (stopped) and %s (refused)", got, stopped, refused)
	}
}

// TestSocketLimitsOfTheProcess: past its sockets at once a user's next
// socket is closed with 1013; past the process's websockets an upgrade gets
// 503; past a user's subscriptions (over all their sockets) the next one is
// RATE_LIMITED. (A server of its own, with small limits.)
func TestSocketLimitsOfTheProcess(t *testing.T) {
	t.Parallel()
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Argon2: FastArgon2, RateLimits: &account.Limits{},
		SocketLimits: &graph.SocketLimits{PerSocket: 10, PerUser: 2, Total: 100, SocketsPerUser: 2, Sockets: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hs := httptest.NewServer(a.Handler)
	defer hs.Close()
	api := &Server{URL: hs.URL}
	owner := srv.RegisterVerified(t, "ws-cap-o")
	org := srv.CreateOrg(t, owner, "Caps")
	ann, bob := srv.AddMember(t, owner, org, "MEMBER", "ws-cap-a"), srv.Register(t, "ws-cap-b")

	a1, a2 := api.MustDialWS(t, ann.AccessToken), api.MustDialWS(t, ann.AccessToken)
	if _, err := api.DialWS(t, ann.AccessToken, WSOptions{}); closeCode(err) != 1013 {
		t.Fatalf("ann's third socket: %v, want close 1013", err)
	}
	// The refused socket's place is given back once the server has closed it,
	// a moment after the client saw the close.
	waitFor(t, "bob's socket, the process's third", func() bool {
		_, err := api.DialWS(t, bob.AccessToken, WSOptions{})
		var refused *UpgradeError
		if err != nil && !(errors.As(err, &refused) && refused.Status == http.StatusServiceUnavailable) {
			t.Fatal(err)
		}
		return err == nil
	})
	var refused *UpgradeError
	if _, err := api.DialWS(t, bob.AccessToken, WSOptions{}); !errors.As(err, &refused) || refused.Status != http.StatusServiceUnavailable {
		t.Fatalf("a fourth websocket in the process: %v, want 503", err)
	}

	// This server runs no feed: Ann's first two subscriptions wait for it,
	// counted; the third is over her two.
	a1.Subscribe(t, "1", eventsSub, map[string]any{"org": org})
	a2.Subscribe(t, "2", eventsSub, map[string]any{"org": org})
	time.Sleep(200 * time.Millisecond)
	a1.Subscribe(t, "3", eventsSub, map[string]any{"org": org})
	if code, _ := endsWith(t, a1, "3", 2*time.Second); code != "RATE_LIMITED" {
		t.Errorf("ann's third subscription: %s, want RATE_LIMITED", code)
	}
}
