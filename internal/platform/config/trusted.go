package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// TrustedDocuments are the only GraphQL documents the server runs when
// TRUSTED_DOCUMENTS names a manifest: lower-case hex sha256 of a document's
// text -> that text.
type TrustedDocuments map[string]string

// maxManifestErrors caps the problems one manifest reports.
const maxManifestErrors = 5

// LoadTrustedDocuments reads a trusted documents manifest: a JSON object
// mapping each document's SHA-256 (64 hex digits, optionally prefixed
// "sha256:", as the GraphQL-over-HTTP persisted documents appendix writes
// document ids) to the document's text. Every key must be the hash of its
// document; a manifest listing no document is refused, as it would refuse every request.
func LoadTrustedDocuments(path string) (TrustedDocuments, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TRUSTED_DOCUMENTS: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() {
		return nil, fmt.Errorf("TRUSTED_DOCUMENTS: %s is not a JSON object mapping sha256 hashes to GraphQL documents", path)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("TRUSTED_DOCUMENTS: %s lists no document (the server would refuse every request)", path)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	docs := make(TrustedDocuments, len(raw))
	var errs []error
	for _, key := range keys {
		hash := strings.ToLower(strings.TrimPrefix(key, "sha256:"))
		var doc string
		switch {
		case len(hash) != sha256.Size*2 || !isHex(hash):
			errs = append(errs, fmt.Errorf("key %q is not a sha256 hash (64 hex digits, optionally prefixed sha256:)", key))
		case json.Unmarshal(raw[key], &doc) != nil || strings.TrimSpace(doc) == "":
			errs = append(errs, fmt.Errorf("key %q: the value is not a GraphQL document (a non-empty string)", key))
		case HashDocument(doc) != hash:
			errs = append(errs, fmt.Errorf("key %q: its document's sha256 is %s; hash the document's exact text (UTF-8, no trailing newline added)", key, HashDocument(doc)))
		default:
			docs[hash] = doc
		}
	}
	if len(errs) > 0 {
		if n := len(errs); n > maxManifestErrors {
			errs = append(errs[:maxManifestErrors], fmt.Errorf("and %d more", n-maxManifestErrors))
		}
		return nil, fmt.Errorf("TRUSTED_DOCUMENTS: %s: %w", path, errors.Join(errs...))
	}
	return docs, nil
}

// HashDocument is the lower-case hex SHA-256 of a document's text: its id in a manifest.
func HashDocument(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
