package app_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"tenantgraph/graph"
	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/config"
)

// The trusted documents of these tests, as a BFF's build would list them.
const (
	trustedMe       = "query Me { me { email } }"
	trustedCreate   = "mutation Create($n: String!) { createOrganization(input: {name: $n}) { name } }"
	untrustedCreate = `mutation { createOrganization(input: {name: "Untrusted Inc"}) { name } }`
)

// trustedServer serves an App with TRUSTED_DOCUMENTS set to a manifest of the
// documents above, on the package's database.
func trustedServer(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := srv.Config
	cfg.TrustedDocuments = config.TrustedDocuments{}
	for _, d := range []string{trustedMe, trustedCreate} {
		cfg.TrustedDocuments[config.HashDocument(d)] = d
	}
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(hs.Close)
	return hs
}

func apqExt(doc string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": config.HashDocument(doc)}}
}

func orgsNamed(t *testing.T, name string) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM organizations WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTrustedDocumentsRunOnlyTheManifest: with TRUSTED_DOCUMENTS, a document of the
// manifest runs when named by documentId or by APQ hash, or sent in full, over GET
// and POST; any other document is refused before anything runs, a mutation too.
func TestTrustedDocumentsRunOnlyTheManifest(t *testing.T) {
	t.Parallel()
	hs := trustedServer(t)
	u := srv.RegisterVerified(t, "trusted")
	auth := func(h http.Header) http.Header {
		h = h.Clone()
		h.Set("Authorization", "Bearer "+u.AccessToken)
		return h
	}
	post := func(h http.Header, body map[string]any) rawResponse {
		b, _ := json.Marshal(body)
		return send(t, http.MethodPost, hs.URL+"/query", auth(h), string(b))
	}
	getQ := func(h http.Header, params url.Values) rawResponse {
		return send(t, http.MethodGet, hs.URL+"/query?"+params.Encode(), auth(h), "")
	}
	wantMe := `{"me":{"email":"` + u.Email + `"}}`
	meID := "sha256:" + config.HashDocument(trustedMe)
	ext, _ := json.Marshal(apqExt(trustedMe))

	t.Run("trusted", func(t *testing.T) {
		for name, r := range map[string]rawResponse{
			"POST documentId":           post(asJSON, map[string]any{"documentId": meID}),
			"POST documentId, bare hex": post(asJSON, map[string]any{"documentId": config.HashDocument(trustedMe), "operationName": "Me"}),
			"POST APQ hash":             post(asJSON, map[string]any{"extensions": apqExt(trustedMe)}),
			"POST full text":            post(asJSON, map[string]any{"query": trustedMe}),
			"POST full text with hash":  post(asJSON, map[string]any{"query": trustedMe, "extensions": apqExt(trustedMe)}),
			"GET documentId":            getQ(asJSON, url.Values{"documentId": {meID}}),
			"GET APQ hash":              getQ(asJSON, url.Values{"extensions": {string(ext)}}),
			"GET full text":             getQ(asJSON, url.Values{"query": {trustedMe}}),
		} {
			if r.Status != 200 || string(r.JSON["data"]) != wantMe || r.JSON["errors"] != nil {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		r := post(asJSON, map[string]any{"documentId": "sha256:" + config.HashDocument(trustedCreate), "variables": map[string]any{"n": "Trusted Inc"}})
		if r.Status != 200 || string(r.JSON["data"]) != `{"createOrganization":{"name":"Trusted Inc"}}` {
			t.Fatalf("trusted mutation by documentId: %d %s", r.Status, r.Body)
		}
	})

	t.Run("untrusted text", func(t *testing.T) {
		for _, h := range []struct {
			h      http.Header
			status int
		}{{asJSON, 200}, {asGraphQLResponse, 400}} {
			for name, r := range map[string]rawResponse{
				"POST full text":        post(h.h, map[string]any{"query": untrustedCreate}),
				"POST APQ registration": post(h.h, map[string]any{"query": untrustedCreate, "extensions": apqExt(untrustedCreate)}),
				"POST another spelling": post(h.h, map[string]any{"query": trustedMe + "\n"}),
				"GET full text":         getQ(h.h, url.Values{"query": {"{ me { id } }"}}),
			} {
				if c := r.code(t); c != graph.CodeDocumentNotTrusted || r.Status != h.status || r.JSON["data"] != nil {
					t.Errorf("%s, Accept %s: %d %s, want %d %s", name, h.h.Get("Accept"), r.Status, r.Body, h.status, graph.CodeDocumentNotTrusted)
				}
			}
		}
		// The refused registration was not kept: its hash alone is still unknown.
		if r := post(asJSON, map[string]any{"extensions": apqExt(untrustedCreate)}); r.code(t) != graph.CodePersistedQueryNotFound {
			t.Fatalf("hash of a refused registration: %d %s", r.Status, r.Body)
		}
		if n := orgsNamed(t, "Untrusted Inc"); n != 0 {
			t.Fatalf("an untrusted mutation ran: %d organizations created", n)
		}
	})

	t.Run("unknown hash", func(t *testing.T) {
		unknown := config.HashDocument(untrustedCreate)
		ext, _ := json.Marshal(apqExt(untrustedCreate))
		for _, h := range []http.Header{asJSON, asGraphQLResponse} {
			for name, r := range map[string]rawResponse{
				"POST documentId":    post(h, map[string]any{"documentId": "sha256:" + unknown}),
				"POST a custom id":   post(h, map[string]any{"documentId": "x-app:me"}),
				"POST APQ hash":      post(h, map[string]any{"extensions": apqExt(untrustedCreate)}),
				"GET documentId":     getQ(h, url.Values{"documentId": {"sha256:" + unknown}}),
				"GET APQ hash":       getQ(h, url.Values{"extensions": {string(ext)}}),
				"POST an empty body": post(h, map[string]any{"documentId": ""}),
			} {
				if c := r.code(t); c != graph.CodePersistedQueryNotFound || r.Status != 200 || r.JSON["data"] != nil {
					t.Errorf("%s, Accept %s: %d %s, want 200 %s", name, h.Get("Accept"), r.Status, r.Body, graph.CodePersistedQueryNotFound)
				}
			}
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for name, r := range map[string]rawResponse{
			"documentId and query":          post(asJSON, map[string]any{"documentId": meID, "query": trustedMe}),
			"documentId not a string":       post(asJSON, map[string]any{"documentId": 7}),
			"APQ hash that is not the text": post(asJSON, map[string]any{"query": trustedMe, "extensions": apqExt(trustedCreate)}),
		} {
			if c := r.code(t); c != graph.CodeBadRequest || r.Status != 400 {
				t.Errorf("%s: %d %s, want 400 BAD_REQUEST", name, r.Status, r.Body)
			}
		}
		// A trusted mutation over GET is still a mutation over GET.
		r := getQ(asJSON, url.Values{"documentId": {"sha256:" + config.HashDocument(trustedCreate)}, "variables": {`{"n":"Over GET Inc"}`}})
		if c := r.code(t); c != graph.CodeBadRequest || r.Status != 405 || orgsNamed(t, "Over GET Inc") != 0 {
			t.Fatalf("trusted mutation over GET: %d %s", r.Status, r.Body)
		}
	})
}

// TestWithoutTrustedDocumentsAnyDocumentRuns: off by default: the same untrusted
// mutation runs, and documentId means nothing.
func TestWithoutTrustedDocumentsAnyDocumentRuns(t *testing.T) {
	t.Parallel()
	u := srv.RegisterVerified(t, "untrusted")
	doc := `mutation { createOrganization(input: {name: "Anything Goes Inc"}) { name } }`
	apitest.MustOK(t, srv.Post(t, u.AccessToken, doc, nil))
	if n := orgsNamed(t, "Anything Goes Inc"); n != 1 {
		t.Fatalf("%d organizations created, want 1", n)
	}
	b, _ := json.Marshal(map[string]any{"documentId": "sha256:" + config.HashDocument(trustedMe)})
	if r := send(t, http.MethodPost, srv.URL+"/query", asJSON, string(b)); r.code(t) != graph.CodeBadRequest || r.Status != 400 {
		t.Fatalf("documentId without trusted documents: %d %s", r.Status, r.Body)
	}
}
