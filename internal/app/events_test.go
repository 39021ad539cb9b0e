package app_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
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

func createCustomer(t *testing.T, s *Server, token string, org uuid.UUID, name string) uuid.UUID {
	t.Helper()
	r := MustOK(t, s.Post(t, token, `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`,
		map[string]any{"o": org, "n": name}))
	var out struct{ CreateCustomer struct{ ID uuid.UUID } }
	r.Decode(t, &out)
	return out.CreateCustomer.ID
}

func TestOrganizationEventsSmoke(t *testing.T) {
	owner := srv.RegisterVerified(t, "ev-owner")
	org := srv.CreateOrg(t, owner, "Events")
	w := srv.MustDialWS(t, owner.AccessToken)
	w.Subscribe(t, "1", eventsSub, map[string]any{"org": org})
	time.Sleep(100 * time.Millisecond)
	id := createCustomer(t, srv, owner.AccessToken, org, "Ada")
	e := nextEvent(t, w, "1", 2*time.Second)
	if e.Action != "customer.created" || e.TargetID != id.String() || e.Subject["name"] != "Ada" {
		t.Fatalf("event %+v", e)
	}
	fmt.Println(e)
}
