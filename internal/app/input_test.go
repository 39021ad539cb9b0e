package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"tenantgraph/graph"
	"tenantgraph/internal/apitest"
)

// rawPost sends body as is: json.Marshal would replace invalid UTF-8 before it left.
func rawPost(t *testing.T, body string) rawResponse {
	t.Helper()
	return send(t, http.MethodPost, srv.URL+"/query", asJSON, body)
}

// badInput checks that r is one BAD_USER_INPUT error on field (none when ""), refused
// before execution (no data entry).
func badInput(t *testing.T, r rawResponse, field string) {
	t.Helper()
	var errs []struct {
		Message    string
		Extensions map[string]any
	}
	if err := json.Unmarshal(r.JSON["errors"], &errs); err != nil || len(errs) != 1 {
		t.Fatalf("want exactly one error: %d %s", r.Status, r.Body)
	}
	if errs[0].Extensions["code"] != "BAD_USER_INPUT" || r.Status != http.StatusOK {
		t.Fatalf("want BAD_USER_INPUT (200): %d %s", r.Status, r.Body)
	}
	if got, _ := errs[0].Extensions["field"].(string); got != field {
		t.Fatalf("extensions.field = %q, want %q: %s", got, field, r.Body)
	}
	if _, ok := r.JSON["data"]; ok {
		t.Fatalf("a refused request answered a data entry: %s", r.Body)
	}
}

// TestBadBytesAreBadUserInput: a NUL character or invalid UTF-8 in any string
// argument, inline or in variables, nested in input objects, is refused at the edge
// with BAD_USER_INPUT naming the argument, before any resolver (or directive) runs,
// and changes nothing.
func TestBadBytesAreBadUserInput(t *testing.T) {
	t.Parallel()
	email := apitest.UniqueEmail("badbytes")
	const login = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`
	const register = `mutation($in: RegisterInput!) { register(input: $in) { accessToken } }`
	// body writes the query's bytes as they are (json.Marshal would replace invalid UTF-8).
	body := func(query, vars string) string {
		return `{"query":"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(query) + `","variables":` + vars + `}`
	}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"login email with NUL, variables", body(login, `{"e":"a\u0000b@example.test","p":"correct horse battery"}`), "email"},
		{"login email with NUL, inline", body(`mutation { login(email: "a\u0000b@example.test", password: "correct horse battery") { accessToken } }`, `{}`), "email"},
		{"login password with invalid UTF-8, variables", body(login, `{"e":"`+email+`","p":"pass`+"\xff"+`word-long"}`), "password"},
		{"register name with invalid UTF-8, variables", body(register, `{"in":{"email":"`+email+`","password":"correct horse battery","name":"Zoë `+"\xc3\x28"+`"}}`), "input.name"},
		{"register name with NUL, inline input object", body(`mutation { register(input: {email: "`+email+`", password: "correct horse battery", name: "Zo\u0000e"}) { accessToken } }`, `{}`), "input.name"},
		{"register name with invalid UTF-8, inline input object", body(`mutation { register(input: {email: "`+email+`", password: "correct horse battery", name: "Zo`+"\xe9"+`"}) { accessToken } }`, `{}`), "input.name"},
		{"an input object variable inside an inline one", body(`mutation($n: String!) { createOrganization(input: {name: $n}) { id } }`, `{"n":"Acme\u0000"}`), "input.name"},
		{"one string with NUL for a list variable", body(`mutation($o: ID!, $t: [String!]) { createCustomer(orgId: $o, input: {name: "X", tags: $t}) { id } }`,
			`{"o":"00000000-0000-4000-8000-000000000000","t":"a\u0000"}`), "input.tags"},
		{"a cursor with NUL in a fragment", body(`query { ...F } fragment F on Query { organizations(after: "x\u0000") { totalCount } }`, `{}`), "after"},
		{"invalid UTF-8 in a variable the operation does not use", body(`{ __typename }`, `{"unused":"`+"\xff"+`"}`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			badInput(t, rawPost(t, tc.body), tc.field)
		})
	}
	var users int
	if err := srv.DB.Get(&users, `SELECT count(*) FROM users WHERE email LIKE 'badbytes%'`); err != nil || users != 0 {
		t.Fatalf("users created by refused requests: %d %v", users, err)
	}

	// GET: percent-encoded bytes in the query string.
	res, b := get(t, srv.URL+"/query?query="+url.QueryEscape(`query($a: String) { organizations(after: $a) { totalCount } }`)+
		"&variables="+url.QueryEscape(`{"a":"`+"\xff"+`"}`), nil)
	var r rawResponse
	r.Status, r.Body = res.StatusCode, b
	if err := json.Unmarshal([]byte(b), &r.JSON); err != nil {
		t.Fatal(b)
	}
	badInput(t, r, "after")

	// A real U+FFFD, valid UTF-8, is ordinary text.
	r2 := srv.Post(t, "", register, map[string]any{"in": map[string]any{"email": email, "password": "correct horse battery", "name": "Zo\uFFFD"}})
	apitest.MustOK(t, r2)
	if !strings.Contains(r2.Raw, "accessToken") {
		t.Fatal(r2.Raw)
	}
}

// TestErrorsPerResponseAreCapped: 2 000 unknown directives used to answer 3 999
// errors (593 KB) for a 12 KB request; now MaxErrors entries, the last saying how many
// more were left out.
func TestErrorsPerResponseAreCapped(t *testing.T) {
	t.Parallel()
	q := "{ __typename " + strings.Repeat("@nope ", 2000) + "}"
	r := rawPost(t, jsonBody(q, nil))
	var errs []struct {
		Message    string
		Extensions map[string]any
	}
	if err := json.Unmarshal(r.JSON["errors"], &errs); err != nil {
		t.Fatal(err)
	}
	if len(errs) != graph.MaxErrors || len(r.Body) > 20_000 {
		t.Fatalf("%d errors, %d bytes: %.300s", len(errs), len(r.Body), r.Body)
	}
	for _, e := range errs[:graph.MaxErrors-1] {
		if e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("kept error %+v", e)
		}
	}
	last := errs[graph.MaxErrors-1]
	if last.Extensions["code"] != graph.CodeTooManyErrors || last.Extensions["dropped"] != float64(3999-49) ||
		!strings.Contains(last.Message, "3950 more errors") {
		t.Fatalf("last entry %+v", last)
	}
	if _, ok := r.JSON["data"]; ok || r.Status != http.StatusOK {
		t.Fatalf("%d, data entry present: %.200s", r.Status, r.Body)
	}
	if schema, err := os.ReadFile("../../schema.graphqls"); err != nil || !strings.Contains(string(schema), graph.CodeTooManyErrors) {
		t.Fatalf("%s is not listed in the header of schema.graphqls (%v)", graph.CodeTooManyErrors, err)
	}
	// Up to the cap, every error is reported as it is.
	r = rawPost(t, jsonBody("{ __typename "+strings.Repeat("@nope ", 25)+"}", nil))
	if n := strings.Count(r.Body, "GRAPHQL_VALIDATION_FAILED"); n != 49 || strings.Contains(r.Body, graph.CodeTooManyErrors) {
		t.Fatalf("25 unknown directives: %d errors: %.300s", n, r.Body)
	}
}

// TestUnknownEnumValuesAreRefusedBeforeExecution: an enum value the schema
// does not list, inline or in a variable, is refused by validation, before any
// resolver runs. That includes a value in another case ("admin" for ADMIN) in
// a variable, which gqlparser lets through: it used to fail during execution
// as INTERNAL_SERVER_ERROR.
func TestUnknownEnumValuesAreRefusedBeforeExecution(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "enumowner")
	o := srv.CreateOrg(t, owner, "Enum "+uuid.NewString()[:8])
	before := srv.TenancyDigest(t, o)
	for name, c := range map[string]struct {
		query string
		vars  map[string]any
	}{
		"a role inline":       {`mutation($o: ID!) { inviteMember(orgId: $o, email: "enum@example.test", role: KING) { id } }`, map[string]any{"o": o}},
		"a role variable":     {`mutation($o: ID!, $r: Role) { inviteMember(orgId: $o, email: "enum@example.test", role: $r) { id } }`, map[string]any{"o": o, "r": "KING"}},
		"a lower-case role":   {`mutation($o: ID!, $r: Role) { inviteMember(orgId: $o, email: "enum@example.test", role: $r) { id } }`, map[string]any{"o": o, "r": "admin"}},
		"a status variable":   {`query($o: ID!, $s: InvitationStatus) { organization(orgId: $o) { invitations(status: $s) { totalCount } } }`, map[string]any{"o": o, "s": "LOST"}},
		"an order in a input": {`query($o: ID!) { customers(orgId: $o, orderBy: {field: NAME, direction: SIDEWAYS}) { totalCount } }`, map[string]any{"o": o}},
		"a lower-case order in an input variable": {`query($o: ID!, $by: CustomerOrder) { customers(orgId: $o, orderBy: $by) { totalCount } }`,
			map[string]any{"o": o, "by": map[string]any{"field": "NAME", "direction": "desc"}}},
	} {
		t.Run(name, func(t *testing.T) {
			r := srv.Post(t, owner.AccessToken, c.query, c.vars)
			if r.Code() != "GRAPHQL_VALIDATION_FAILED" || r.Data != nil {
				t.Fatalf("want GRAPHQL_VALIDATION_FAILED and no data: %s", r.Raw)
			}
		})
	}
	if after := srv.TenancyDigest(t, o); after != before {
		t.Fatalf("a refused request changed the organization:\n%s\n%s", before, after)
	}
}
