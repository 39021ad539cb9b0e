package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Codes of trusted documents (HandlerOptions.TrustedDocuments).
const (
	// CodeDocumentNotTrusted: a document sent in full that is not in the manifest,
	// or an APQ registration of one.
	CodeDocumentNotTrusted = "DOCUMENT_NOT_TRUSTED"
	// CodePersistedQueryNotFound: a hash (documentId or the APQ extension) that
	// names no trusted document, or no document cached by APQ. gqlgen's code.
	CodePersistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND"
)

// trustedDocuments runs only the documents of a manifest (the GraphQL Trusted
// Documents convention), in place of automatic persisted queries. A request
// names its document in one of three ways:
//
//   - documentId (the GraphQL-over-HTTP persisted documents appendix):
//     "sha256:<hex>" or the bare hex, in the JSON body or the GET parameters;
//   - the APQ extension, extensions.persistedQuery.sha256Hash, without a query;
//   - the full text in query (with or without the APQ extension), which must be
//     byte for byte a trusted document's.
//
// An unknown hash is PERSISTED_QUERY_NOT_FOUND; a text that is not trusted,
// DOCUMENT_NOT_TRUSTED (an APQ registration of a new document too); both are
// refusals before anything runs.
type trustedDocuments struct {
	docs map[string]string // lower-case hex sha256 -> document
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = trustedDocuments{}

func (trustedDocuments) ExtensionName() string                   { return "TrustedDocuments" }
func (trustedDocuments) Validate(graphql.ExecutableSchema) error { return nil }

func (t trustedDocuments) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	id, sent, err := documentIDFrom(ctx)
	apq := p.Extensions["persistedQuery"]
	switch {
	case err != nil:
		return badRequest(err.Error())
	case sent && (p.Query != "" || apq != nil):
		return badRequest("send documentId alone, without query or extensions.persistedQuery")
	case sent:
		doc, ok := t.docs[strings.ToLower(strings.TrimPrefix(id, "sha256:"))]
		if !ok {
			return coded(CodePersistedQueryNotFound, "documentId names no trusted document")
		}
		p.Query = doc
		return nil
	case apq != nil:
		ext, _ := apq.(map[string]any)
		hash, _ := ext["sha256Hash"].(string)
		if fmt.Sprint(ext["version"]) != "1" || hash == "" {
			return badRequest(`invalid APQ extension: want {"version": 1, "sha256Hash": "<hex>"}`)
		}
		hash = strings.ToLower(hash)
		doc, ok := t.docs[hash]
		if p.Query == "" {
			if !ok {
				// Apollo clients recognise this message and resend with the query, which is then refused.
				return coded(CodePersistedQueryNotFound, "PersistedQueryNotFound")
			}
			p.Query = doc
			return nil
		}
		if hashText(p.Query) != hash {
			return badRequest("provided APQ hash does not match query")
		}
		if !ok {
			return notTrusted()
		}
		return nil
	case p.Query == "":
		return nil // the transport answers: no query
	}
	if _, ok := t.docs[hashText(p.Query)]; !ok {
		return notTrusted()
	}
	return nil
}

func notTrusted() *gqlerror.Error {
	return coded(CodeDocumentNotTrusted, "this server runs only its trusted documents, and this document is not one of them")
}

func badRequest(msg string) *gqlerror.Error { return coded(CodeBadRequest, msg) }

func coded(code, msg string) *gqlerror.Error {
	e := &gqlerror.Error{Message: msg}
	errcode.Set(e, code)
	return e
}

func hashText(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// The documentId of a request reaches the extension in the context: gqlgen's
// RawParams has no field for it (the transport, compliant, reads it).
type documentIDKey struct{}

type documentID struct {
	id  string
	err error // documentId was sent, but not as a string
}

func withDocumentID(ctx context.Context, d documentID) context.Context {
	return context.WithValue(ctx, documentIDKey{}, d)
}

// documentIDFrom reports the request's documentId, whether it sent one, and
// whether it was malformed.
func documentIDFrom(ctx context.Context) (id string, sent bool, err error) {
	d, ok := ctx.Value(documentIDKey{}).(documentID)
	return d.id, ok, d.err
}
