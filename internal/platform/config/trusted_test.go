package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeManifest(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrustedDocumentsManifest(t *testing.T) {
	me, typename := "query Me { me { id } }", "{ __typename }"
	ok := writeManifest(t, `{"sha256:`+HashDocument(me)+`": "query Me { me { id } }", "`+strings.ToUpper(HashDocument(typename))+`": "{ __typename }"}`)
	docs, err := LoadTrustedDocuments(ok)
	if err != nil || len(docs) != 2 || docs[HashDocument(me)] != me || docs[HashDocument(typename)] != typename {
		t.Fatalf("LoadTrustedDocuments = %v, %v", docs, err)
	}

	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `nope`, "is not a JSON object"},
		{"a list", `["{ __typename }"]`, "is not a JSON object"},
		{"two values", `{} {}`, "is not a JSON object"},
		{"empty", `{}`, "lists no document"},
		{"a key that is not a hash", `{"Me": "query Me { me { id } }"}`, `key "Me" is not a sha256 hash`},
		{"a value that is not a string", `{"` + HashDocument(me) + `": {"body": "x"}}`, "is not a GraphQL document"},
		{"a hash of another text", `{"sha256:` + HashDocument(me+"\n") + `": "query Me { me { id } }"}`, "its document's sha256 is " + HashDocument(me)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadTrustedDocuments(writeManifest(t, tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) ||
				!strings.HasPrefix(err.Error(), "TRUSTED_DOCUMENTS: ") {
				t.Fatalf("error %v, want one that says %q", err, tc.want)
			}
		})
	}
	if _, err := LoadTrustedDocuments(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing manifest: %v", err)
	}
}

// TestTrustedDocumentsSetting: off unless set; a bad manifest stops Load with the others' problems.
func TestTrustedDocumentsSetting(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "development")
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("TRUSTED_DOCUMENTS", "")
	if c, err := Load(); err != nil || c.TrustedDocuments != nil {
		t.Fatalf("unset: %v, %v", c.TrustedDocuments, err)
	}
	t.Setenv("TRUSTED_DOCUMENTS", writeManifest(t, `{"`+HashDocument("{ __typename }")+`": "{ __typename }"}`))
	if c, err := Load(); err != nil || len(c.TrustedDocuments) != 1 {
		t.Fatalf("set: %v, %v", c.TrustedDocuments, err)
	}
	t.Setenv("TRUSTED_DOCUMENTS", writeManifest(t, `{"abc": "{ __typename }"}`))
	t.Setenv("ACCESS_TOKEN_TTL", "soon")
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), `TRUSTED_DOCUMENTS: `) || !strings.Contains(err.Error(), "ACCESS_TOKEN_TTL") {
		t.Fatalf("a bad manifest: %v", err)
	}
}
