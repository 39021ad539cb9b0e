package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"tenantgraph/graph"
	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
)

type rawResponse struct {
	Status int
	Header http.Header
	Body   string
	JSON   map[string]json.RawMessage
}

func (r rawResponse) code(t *testing.T) string {
	t.Helper()
	var errs []struct {
		Message    string
		Extensions map[string]any
	}
	if err := json.Unmarshal(r.JSON["errors"], &errs); err != nil || len(errs) != 1 {
		t.Fatalf("want exactly one error: %d %s", r.Status, r.Body)
	}
	c, _ := errs[0].Extensions["code"].(string)
	return c
}

// send makes one HTTP request to base+path; h holds headers such as Content-Type and Accept.
func send(t *testing.T, method, u string, h http.Header, body string) rawResponse {
	t.Helper()
	res, b := do(t, method, u, h, body)
	out := rawResponse{Status: res.StatusCode, Header: res.Header, Body: b}
	if err := json.Unmarshal([]byte(b), &out.JSON); err != nil {
		t.Fatalf("%s %s: response is not a JSON object (%d): %s", method, u, res.StatusCode, b)
	}
	return out
}

func jsonBody(query string, extra map[string]any) string {
	m := map[string]any{"query": query}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

var (
	asJSON            = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	asGraphQLResponse = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/graphql-response+json"}}
)

// newServer serves a second App on the test database, with other query limits.
func newServer(t *testing.T, limits *graph.Limits) *httptest.Server {
	t.Helper()
	a, err := app.New(app.Options{Config: srv.Config, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Argon2: apitest.FastArgon2, QueryLimits: limits})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return hs
}

// TestEveryErrorCodeIsDocumented sends each kind of request the server refuses before
// executing it, checks its exact code, HTTP status for both response media types and
// that no "data" entry comes back, and that each code is listed in schema.graphqls.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "codes")
	trusted := trustedServer(t)
	tight := newServer(t, &graph.Limits{Complexity: graph.DefaultLimits.Complexity, Depth: 3, Aliases: graph.DefaultLimits.Aliases, CredentialOps: graph.DefaultLimits.CredentialOps})
	schema, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	header := string(schema[:strings.Index(string(schema), "directive @public")])

	aliases := make([]string, 31)
	for i := range aliases {
		aliases[i] = fmt.Sprintf("a%d: __typename", i)
	}
	auth := func(h http.Header) http.Header {
		h = h.Clone()
		h.Set("Authorization", "Bearer "+u.AccessToken)
		return h
	}
	// Status for application/json, then for application/graphql-response+json.
	type want struct {
		code               string
		jsonStatus, gqlRsp int
	}
	post := func(base string) func(h http.Header, body string) rawResponse {
		return func(h http.Header, body string) rawResponse { return send(t, http.MethodPost, base+"/query", h, body) }
	}
	for _, tc := range []struct {
		name string
		do   func(h http.Header) rawResponse
		want want
	}{
		{"parse error", func(h http.Header) rawResponse { return post(srv.URL)(h, jsonBody(`{ me { id `, nil)) },
			want{"GRAPHQL_PARSE_FAILED", 200, 400}},
		{"over the parser token limit", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody("{ "+strings.Repeat("__typename ", graph.ParserTokenLimit)+"}", nil))
		}, want{"GRAPHQL_PARSE_FAILED", 200, 400}},
		{"validation error", func(h http.Header) rawResponse { return post(srv.URL)(h, jsonBody(`{ me { nope } }`, nil)) },
			want{"GRAPHQL_VALIDATION_FAILED", 200, 400}},
		{"wrong variable type", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody(`query($f: Int) { organizations(first: $f) { totalCount } }`, map[string]any{"variables": map[string]any{"f": "many"}}))
		}, want{"GRAPHQL_VALIDATION_FAILED", 200, 400}},
		{"unknown operation name", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody(`query A { __typename }`, map[string]any{"operationName": "B"}))
		}, want{"GRAPHQL_VALIDATION_FAILED", 200, 400}},
		{"unknown persisted query", func(h http.Header) rawResponse {
			return post(srv.URL)(h, `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"`+strings.Repeat("ab", 32)+`"}}}`)
		}, want{"PERSISTED_QUERY_NOT_FOUND", 200, 200}},
		{"a document that is not trusted", func(h http.Header) rawResponse {
			return post(trusted.URL)(h, jsonBody(`{ __typename }`, nil))
		}, want{graph.CodeDocumentNotTrusted, 200, 400}},
		{"an unknown trusted document", func(h http.Header) rawResponse {
			return post(trusted.URL)(h, `{"documentId":"sha256:`+strings.Repeat("ab", 32)+`"}`)
		}, want{"PERSISTED_QUERY_NOT_FOUND", 200, 200}},
		{"a documentId with a query", func(h http.Header) rawResponse {
			return post(trusted.URL)(h, jsonBody(trustedMe, map[string]any{"documentId": "sha256:" + strings.Repeat("ab", 32)}))
		}, want{"BAD_REQUEST", 400, 400}},
		{"persisted query hash mismatch", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody(`{ __typename }`, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("ab", 32)}}}))
		}, want{"BAD_REQUEST", 400, 400}},
		{"over the complexity limit", func(h http.Header) rawResponse {
			return post(srv.URL)(auth(h), jsonBody(`{ organizations(first: 100) { edges { node { members(first: 100) { edges { node { role user { email } } } } } } } }`, nil))
		}, want{"COMPLEXITY_LIMIT_EXCEEDED", 200, 400}},
		{"over the depth limit", func(h http.Header) rawResponse {
			return post(tight.URL)(auth(h), jsonBody(`{ organizations { edges { node { id } } } }`, nil))
		}, want{"DEPTH_LIMIT_EXCEEDED", 200, 400}},
		{"over the alias limit", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody("{ "+strings.Join(aliases, " ")+" }", nil))
		}, want{"ALIAS_LIMIT_EXCEEDED", 200, 400}},
		{"two credential operations", func(h http.Header) rawResponse {
			return post(srv.URL)(h, jsonBody(`mutation { a: requestPasswordReset(email: "a@example.test") b: requestPasswordReset(email: "b@example.test") }`, nil))
		}, want{"CREDENTIAL_OPERATION_LIMIT", 200, 400}},
		{"no query", func(h http.Header) rawResponse { return post(srv.URL)(h, `{"variables":{}}`) },
			want{"BAD_REQUEST", 400, 400}},
		{"a body that is not JSON", func(h http.Header) rawResponse { return post(srv.URL)(h, `query=%7B__typename%7D`) },
			want{"BAD_REQUEST", 400, 400}},
		{"a query that is not a string", func(h http.Header) rawResponse { return post(srv.URL)(h, `{"query":1}`) },
			want{"BAD_REQUEST", 400, 400}},
		{"no Content-Type", func(h http.Header) rawResponse {
			h = h.Clone()
			h.Del("Content-Type")
			return post(srv.URL)(h, jsonBody(`{ __typename }`, nil))
		}, want{"BAD_REQUEST", 415, 415}},
		{"an unsupported Content-Type", func(h http.Header) rawResponse {
			h = h.Clone()
			h.Set("Content-Type", "text/plain")
			return post(srv.URL)(h, jsonBody(`{ __typename }`, nil))
		}, want{"BAD_REQUEST", 415, 415}},
		{"a mutation over GET", func(h http.Header) rawResponse {
			return send(t, http.MethodGet, srv.URL+"/query?query="+url.QueryEscape(`mutation { logoutAll }`), h, "")
		}, want{"BAD_REQUEST", 405, 405}},
		{"variables over GET that are not JSON", func(h http.Header) rawResponse {
			return send(t, http.MethodGet, srv.URL+"/query?query="+url.QueryEscape(`{ __typename }`)+"&variables=nope", h, "")
		}, want{"BAD_REQUEST", 400, 400}},
		{"a PUT", func(h http.Header) rawResponse {
			return send(t, http.MethodPut, srv.URL+"/query", h, jsonBody(`{ __typename }`, nil))
		},
			want{"BAD_REQUEST", 405, 405}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []struct {
				h      http.Header
				status int
			}{{asJSON, tc.want.jsonStatus}, {asGraphQLResponse, tc.want.gqlRsp}} {
				r := tc.do(accept.h)
				if c := r.code(t); c != tc.want.code || r.Status != accept.status {
					t.Fatalf("Accept %s: %d %s, want %d %s: %s", accept.h.Get("Accept"), r.Status, c, accept.status, tc.want.code, r.Body)
				}
				if _, ok := r.JSON["data"]; ok {
					t.Fatalf("a refused request answered a data entry: %s", r.Body)
				}
			}
			if !strings.Contains(header, tc.want.code) {
				t.Fatalf("%s is not listed in the header of schema.graphqls", tc.want.code)
			}
		})
	}
}

func TestUnsupportedContentTypeGetsAHint(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"", "text/plain; charset=utf-8", "application/x-www-form-urlencoded"} {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		r := send(t, http.MethodPost, srv.URL+"/query", h, `{"query":"{ __typename }"}`)
		if r.Status != http.StatusUnsupportedMediaType || r.code(t) != "BAD_REQUEST" ||
			!strings.Contains(r.Body, "send Content-Type: application/json") || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q: %d %s %s", ct, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
}

// TestGraphQLPathIsTheSameEndpoint: /graphql runs the same chain as /query (token,
// loaders, body limit).
func TestGraphQLPathIsTheSameEndpoint(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "graphqlpath")
	h := asJSON.Clone()
	h.Set("Authorization", "Bearer "+u.AccessToken)
	r := send(t, http.MethodPost, srv.URL+"/graphql", h, jsonBody(`{ me { email } }`, nil))
	if r.Status != 200 || !strings.Contains(string(r.JSON["data"]), u.Email) {
		t.Fatalf("POST /graphql: %d %s", r.Status, r.Body)
	}
	r = send(t, http.MethodGet, srv.URL+"/graphql?query="+url.QueryEscape(`{ me { email } }`), h, "")
	if r.Status != 200 || !strings.Contains(string(r.JSON["data"]), u.Email) {
		t.Fatalf("GET /graphql: %d %s", r.Status, r.Body)
	}
	big := jsonBody(`{ __typename }`, map[string]any{"variables": map[string]any{"pad": strings.Repeat("x", app.MaxBodyBytes)}})
	if r := send(t, http.MethodPost, srv.URL+"/graphql", asJSON, big); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit on /graphql: %d", r.Status)
	}
}

// TestChunkedBodyOverTheLimit: without a declared length, reading stops at the limit
// and the answer is the same 413 as for a declared one.
func TestChunkedBodyOverTheLimit(t *testing.T) {
	t.Parallel()
	big := jsonBody(`{ __typename }`, map[string]any{"variables": map[string]any{"pad": strings.Repeat("x", app.MaxBodyBytes)}})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/query", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"code":"BAD_USER_INPUT"`) || strings.Contains(string(b), `"data"`) {
		t.Fatalf("a chunked body over the limit: %d %s", res.StatusCode, b)
	}
}

// TestComplexityLimitBoundary: connections cost `first` times their selection; the
// limit lets the dashboard through and refuses what is just above it.
func TestComplexityLimitBoundary(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "complexity")
	// 100 x (edges 1 + node 1 + members 98 x totalCount 1) = 10 000.
	at := `{ organizations(first: 100) { edges { node { members(first: 98) { totalCount } } } } }`
	apitest.MustOK(t, srv.Post(t, u.AccessToken, at, nil))
	over := `{ __typename organizations(first: 100) { edges { node { members(first: 98) { totalCount } } } } }`
	r := srv.Post(t, u.AccessToken, over, nil)
	if r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" || !strings.Contains(r.Raw, "complexity 10001") {
		t.Fatalf("complexity 10 001: %s", r.Raw)
	}
	// With variables and defaults: members without `first` cost 20 each.
	vars := map[string]any{"n": 100}
	byDefault := `query($n: Int) { organizations(first: $n) { edges { node { members { edges { node { role user { email name } } } } } } } }`
	if r := srv.Post(t, u.AccessToken, byDefault, vars); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("100 organizations x 20 members: %s", r.Raw)
	}
	vars["n"] = 20
	apitest.MustOK(t, srv.Post(t, u.AccessToken, byDefault, vars))
	apitest.MustOK(t, srv.Post(t, u.AccessToken, dashboardQuery, nil))
}

func TestAliasLimitBoundary(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "aliases")
	query := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("m%d: me { email }", i)
		}
		return "{ " + strings.Join(parts, " ") + " }"
	}
	r := apitest.MustOK(t, srv.Post(t, u.AccessToken, query(30), nil))
	if !strings.Contains(string(r.Data), `"m29":{"email":"`+u.Email) {
		t.Fatalf("30 aliases: %s", r.Raw)
	}
	if r := srv.Post(t, u.AccessToken, query(31), nil); r.Code() != "ALIAS_LIMIT_EXCEEDED" {
		t.Fatalf("31 aliases: %s", r.Raw)
	}
	// Aliases in a fragment count every time it is used: 2 + 2 x 14 = 30 pass, 2 + 2 x 15 = 32 do not.
	twice := func(perUse int) string {
		f := make([]string, perUse)
		for i := range f {
			f[i] = fmt.Sprintf("e%d: email", i)
		}
		return `{ a: me { ...F } b: me { ...F } } fragment F on User { ` + strings.Join(f, " ") + ` }`
	}
	apitest.MustOK(t, srv.Post(t, u.AccessToken, twice(14), nil))
	if r := srv.Post(t, u.AccessToken, twice(15), nil); r.Code() != "ALIAS_LIMIT_EXCEEDED" || !strings.Contains(r.Raw, "uses 32 aliases") {
		t.Fatalf("a fragment of 15 aliases used twice: %s", r.Raw)
	}
}

// TestDeepestRealQueryPasses: depth 8 is the deepest path the schema has today
// (organizations > edges > node > members > edges > node > user > email), well under 10;
// the boundary itself is tested on a schema with a cycle in graph/limits_test.go.
func TestDeepestRealQueryPasses(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "deep")
	srv.CreateOrg(t, owner, "Deep")
	deep := `{ organizations { edges { node { members { edges { node { user { ...U } } } } } } } }
fragment U on User { ... on User { email __typename } }`
	r := apitest.MustOK(t, srv.Post(t, owner.AccessToken, deep, nil))
	if !strings.Contains(string(r.Data), owner.Email) {
		t.Fatalf("deepest query: %s", r.Raw)
	}
	// A server with depth 7 refuses it, before any resolver: nothing is read.
	tight := newServer(t, &graph.Limits{Complexity: graph.DefaultLimits.Complexity, Depth: 7, Aliases: graph.DefaultLimits.Aliases, CredentialOps: graph.DefaultLimits.CredentialOps})
	h := asJSON.Clone()
	h.Set("Authorization", "Bearer "+owner.AccessToken)
	if r := send(t, http.MethodPost, tight.URL+"/query", h, jsonBody(deep, nil)); r.code(t) != "DEPTH_LIMIT_EXCEEDED" {
		t.Fatalf("depth 8 over a limit of 7: %s", r.Body)
	}
}

// TestFullIntrospectionQueryPasses: GraphiQL's (and graphql-codegen's) introspection
// query, nested deeper than the depth limit, works in development.
func TestFullIntrospectionQueryPasses(t *testing.T) {
	t.Parallel()
	q, err := os.ReadFile("testdata/introspection.graphql")
	if err != nil {
		t.Fatal(err)
	}
	r := apitest.MustOK(t, srv.Post(t, "", string(q), nil))
	var out struct {
		Schema struct {
			QueryType struct{ Name string }
			Types     []struct{ Name string }
		} `json:"__schema"`
	}
	r.Decode(t, &out)
	if out.Schema.QueryType.Name != "Query" || len(out.Schema.Types) < 20 {
		t.Fatalf("introspection result: %.300s", r.Raw)
	}
}

// TestPersistedQueryRoundTrip: the Apollo flow: hash only (not found, 200), then the
// full query with its hash, then the hash alone works.
func TestPersistedQueryRoundTrip(t *testing.T) {
	t.Parallel()
	q := `{ __typename }`
	sum := sha256.Sum256([]byte(q))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	hashOnly, _ := json.Marshal(map[string]any{"extensions": ext})
	if r := send(t, http.MethodPost, srv.URL+"/query", asJSON, string(hashOnly)); r.Status != 200 || r.code(t) != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash: %d %s", r.Status, r.Body)
	}
	if r := send(t, http.MethodPost, srv.URL+"/query", asJSON, jsonBody(q, map[string]any{"extensions": ext})); r.Status != 200 || string(r.JSON["data"]) != `{"__typename":"Query"}` {
		t.Fatalf("query with hash: %d %s", r.Status, r.Body)
	}
	if r := send(t, http.MethodPost, srv.URL+"/query", asGraphQLResponse, string(hashOnly)); r.Status != 200 || string(r.JSON["data"]) != `{"__typename":"Query"}` {
		t.Fatalf("known hash: %d %s", r.Status, r.Body)
	}
}
