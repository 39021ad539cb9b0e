package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/platform/reqmeta"
)

// The GraphQL-over-HTTP rules gqlgen's POST and GET transports do not follow on their
// own, applied by a thin wrapper around them (compliant):
//
//   - A request gqlgen refuses before executing it (parse, validation, limits) answers
//     HTTP 200 to a client that accepts application/json and 400 to one that accepts
//     application/graphql-response+json (gqlgen: 422 / 400 for parse and validation
//     errors, 200 for the limits). PERSISTED_QUERY_NOT_FOUND stays 200: Apollo clients
//     retry with the full query on it.
//   - A malformed request (no query, a body that is not a JSON object, an APQ
//     extension that does not fit) answers 400 with BAD_REQUEST; a body over the limit
//     while it is read answers 413 with BAD_USER_INPUT; a mutation over GET answers 405.
//   - A response to a request that was not executed has no "data" entry.
//   - Every error carries an extensions.code.
//
// And an executed operation's response is written as it is (writeResponse):
// gqlgen's json.Marshal of the response validates and copies its data, which
// the executor wrote as compact JSON already.

const mediaGraphQLResponse = "application/graphql-response+json"

// compliant wraps one of gqlgen's HTTP transports.
type compliant struct {
	graphql.Transport
	// documentIDs: read the request's documentId (trusted documents), which
	// gqlgen's transports ignore, and pass it on in the context (withDocumentID).
	documentIDs bool
}

func (c compliant) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	rw := &shapingWriter{ResponseWriter: w, meta: reqmeta.From(r.Context())}
	ex := &shapingExecutor{GraphExecutor: exec, w: rw, direct: r.Method == http.MethodPost || r.Method == http.MethodGet}
	if r.Body != nil {
		br := &bodyReader{ReadCloser: r.Body, tooLarge: &rw.tooLarge, text: &ex.text}
		if c.documentIDs && r.Method == http.MethodPost {
			br.keep = &bytes.Buffer{}
			ex.body = br.keep
		}
		r.Body = br
	}
	query := r.URL.Query()
	for _, vs := range query { // GET: query, variables, operationName, extensions, documentId
		for _, v := range vs {
			ex.text.write([]byte(v))
		}
	}
	if vs, ok := query["documentId"]; ok && c.documentIDs && r.Method == http.MethodGet {
		ex.docID = &documentID{id: vs[0]}
	}
	c.Transport.Do(rw, r, ex)
	rw.finish()
}

// bodyReader notes whether reading stopped at http.MaxBytesReader's limit, and
// follows whether the body is valid UTF-8; with keep, it keeps what it read.
type bodyReader struct {
	io.ReadCloser
	tooLarge **http.MaxBytesError
	text     *utf8Checker
	keep     *bytes.Buffer
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.text.write(p[:n])
	if b.keep != nil {
		b.keep.Write(p[:n])
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		*b.tooLarge = mbe
	}
	return n, err
}

// shapingExecutor sees what the transport does with the request and tells the
// writer; it caps the errors of every response (capErrors).
type shapingExecutor struct {
	graphql.GraphExecutor
	w     *shapingWriter
	text  utf8Checker   // the raw request: body, or the URL's query parameters
	body  *bytes.Buffer // the POST body, kept to read its documentId
	docID *documentID   // the request's documentId, when it sent one
	// direct: the transport writes one response per request (POST, GET), which
	// the executor writes itself (writeResponse).
	direct bool
}

func (e *shapingExecutor) CreateOperationContext(ctx context.Context, p *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	if !e.text.valid() {
		ctx = withRawInvalidUTF8(ctx) // for inputBytes
	}
	if e.body != nil {
		e.docID = bodyDocumentID(e.body.Bytes())
	}
	if e.docID != nil {
		ctx = withDocumentID(ctx, *e.docID) // for trustedDocuments
	}
	oc, errs := e.GraphExecutor.CreateOperationContext(ctx, p)
	if len(errs) == 0 {
		return oc, nil
	}
	errs = capErrors(errs)
	e.w.refused = true
	if p.Query == "" && p.Extensions["persistedQuery"] == nil && e.docID == nil {
		// Not a GraphQL error: the request has no query at all.
		errs = gqlerror.List{gqlerror.Errorf(`the request has no query: send {"query": "..."}`)}
		errcode.Set(errs[0], CodeBadRequest)
	}
	for _, err := range errs {
		// gqlgen leaves a few request errors (the APQ extension's) without a code.
		if _, ok := err.Extensions["code"]; !ok {
			errcode.Set(err, CodeBadRequest)
		}
	}
	e.w.errs = errs
	return oc, errs
}

func (e *shapingExecutor) DispatchOperation(ctx context.Context, oc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	next, ctx := e.GraphExecutor.DispatchOperation(ctx, oc)
	return func(ctx context.Context) *graphql.Response {
		resp := next(ctx)
		if e.direct && refusedByOrganization(resp) {
			// Refused before anything ran, like request admission's refusals:
			// HTTP 429, Retry-After, and no data entry (shapingWriter.finish).
			e.w.Header().Set("Retry-After", "1")
			e.w.WriteHeader(http.StatusTooManyRequests)
			resp.Errors = capErrors(resp.Errors)
			return resp
		}
		if resp != nil {
			resp.Errors = capErrors(resp.Errors)
			reqmeta.From(ctx).SetOutcome(outcome(resp.Errors))
		}
		if e.direct && resp != nil && resp.HasNext == nil && resp.Label == "" && resp.Path == nil && writeResponse(e.w, resp) {
			e.w.written = true // the transport's copy is dropped
			return &graphql.Response{}
		}
		return resp
	}, ctx
}

// writeResponse writes resp as gqlgen's transports do (the fields of
// graphql.Response, in its order), its data as the executor wrote it; false
// when it wrote nothing (its errors or extensions would not marshal).
func writeResponse(w io.Writer, resp *graphql.Response) bool {
	head := []byte(`{"data":`)
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			return false
		}
		head = append(append([]byte(`{"errors":`), errs...), `,"data":`...)
	}
	tail := []byte("}")
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			return false
		}
		tail = append(append([]byte(`,"extensions":`), ext...), '}')
	}
	data := []byte(resp.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	for _, b := range [][]byte{head, data, tail} {
		if _, err := w.Write(b); err != nil {
			break // the client is gone
		}
	}
	return true
}

func (e *shapingExecutor) DispatchError(ctx context.Context, list gqlerror.List) *graphql.Response {
	e.w.refused = true
	list = capErrors(list)
	for _, err := range list {
		if _, ok := err.Extensions["code"]; ok {
			continue
		}
		// The transport's own errors: the body could not be read or decoded. gqlgen
		// appends the whole body to the decoding message; keep the reason only.
		if i := strings.Index(err.Message, " body:"); i > 0 && strings.HasPrefix(err.Message, "json request body could not be decoded") {
			err.Message = "the request body is not a JSON object with a string query" + strings.TrimPrefix(err.Message[:i], "json request body could not be decoded")
		}
		errcode.Set(err, CodeBadRequest)
	}
	if e.w.errs == nil {
		e.w.errs = list
	}
	return e.GraphExecutor.DispatchError(ctx, list)
}

// shapingWriter holds back the status and the body of an error response so that they
// can follow the rules above; an executed operation's response passes straight through.
type shapingWriter struct {
	http.ResponseWriter
	refused  bool          // the operation was not executed (DispatchError was called)
	errs     gqlerror.List // what refused it, before the error presenter
	tooLarge *http.MaxBytesError
	status   int
	buf      bytes.Buffer
	passing  bool // writing through
	written  bool // the executor wrote the response (writeResponse): drop the transport's
	meta     *reqmeta.Meta
}

func (w *shapingWriter) WriteHeader(status int) {
	if w.passing || w.status != 0 {
		return
	}
	w.status = status
}

func (w *shapingWriter) Write(b []byte) (int, error) {
	if w.written {
		return len(b), nil
	}
	if w.passing {
		return w.ResponseWriter.Write(b)
	}
	if !w.refused && w.status < 400 {
		w.passing = true
		if w.status != 0 {
			w.ResponseWriter.WriteHeader(w.status)
		}
		return w.ResponseWriter.Write(b)
	}
	return w.buf.Write(b)
}

func (w *shapingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && w.passing {
		f.Flush()
	}
}

func (w *shapingWriter) finish() {
	if w.passing {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	body := w.buf.Bytes()
	var resp map[string]json.RawMessage
	var errs gqlerror.List
	if json.Unmarshal(body, &resp) == nil && json.Unmarshal(resp["errors"], &errs) == nil {
		for _, e := range errs {
			if e.Extensions == nil {
				e.Extensions = map[string]any{}
			}
			if _, ok := e.Extensions["code"]; !ok {
				e.Extensions["code"] = CodeBadRequest
			}
		}
		if w.tooLarge != nil {
			errs = gqlerror.List{{Message: fmt.Sprintf("request body too large (limit %d bytes)", w.tooLarge.Limit),
				Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}
		}
		resp["errors"], _ = json.Marshal(errs)
		w.meta.SetOutcome(outcome(errs))
		delete(resp, "data") // nothing was executed
		if b, err := json.Marshal(resp); err == nil {
			body = b
		}
		status = w.statusFor(status)
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "POST")
	}
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(status)
	w.ResponseWriter.Write(body) //nolint:errcheck // the client is gone
}

func (w *shapingWriter) statusFor(transportStatus int) int {
	switch {
	case w.tooLarge != nil:
		return http.StatusRequestEntityTooLarge
	case transportStatus == http.StatusNotAcceptable:
		return http.StatusMethodNotAllowed // a mutation over GET
	case !w.refused || hasCode(w.errs, CodeBadRequest):
		return max(transportStatus, http.StatusBadRequest)
	case allCode(w.errs, "PERSISTED_QUERY_NOT_FOUND"):
		return http.StatusOK
	case w.Header().Get("Content-Type") == mediaGraphQLResponse:
		return http.StatusBadRequest
	default:
		return http.StatusOK
	}
}

// outcome is the metrics' outcome of a response with errs: OK, or the first error's code.
func outcome(errs gqlerror.List) string {
	if len(errs) == 0 {
		return "OK"
	}
	if c, ok := errs[0].Extensions["code"].(string); ok && c != "" {
		return c
	}
	return CodeBadRequest
}

func hasCode(errs gqlerror.List, code string) bool {
	for _, e := range errs {
		if e.Extensions["code"] == code {
			return true
		}
	}
	return false
}

func allCode(errs gqlerror.List, code string) bool {
	for _, e := range errs {
		if e.Extensions["code"] != code {
			return false
		}
	}
	return len(errs) > 0
}

// unsupported takes every request no other transport does, last: a POST whose
// Content-Type is not application/json, or a method other than GET, POST and OPTIONS.
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	status, msg := http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: send a POST (or a GET for queries)"
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(ct)
		status = http.StatusUnsupportedMediaType
		if ct == "" {
			msg = "the request has no Content-Type: send Content-Type: application/json"
		} else {
			msg = fmt.Sprintf("unsupported Content-Type %q: send Content-Type: application/json", mt)
		}
	} else {
		if up := r.Header.Get("Upgrade"); up != "" {
			msg = fmt.Sprintf("upgrade to %q not supported: send a POST (or a GET for queries)", up)
		}
		w.Header().Set("Allow", "GET, POST, OPTIONS")
	}
	err := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": CodeBadRequest}}
	reqmeta.From(r.Context()).SetOutcome(CodeBadRequest)
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{err}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck // the client is gone
}

// bodyDocumentID reads the documentId of a JSON request body that gqlgen has
// decoded already; nil when it has none (or null).
func bodyDocumentID(body []byte) *documentID {
	var b struct {
		DocumentID json.RawMessage `json:"documentId"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.DocumentID) == 0 || string(b.DocumentID) == "null" {
		return nil
	}
	var id string
	if err := json.Unmarshal(b.DocumentID, &id); err != nil {
		return &documentID{err: errors.New("documentId must be a string")}
	}
	return &documentID{id: id}
}
