// Package reqmeta carries what the HTTP edge knows about a request (its id, the
// client's address and user agent) to the layers below as a plain value in the
// context, so that services and stores never import the HTTP layer.
package reqmeta

import (
	"context"
	"sync"
)

type ctxKey struct{}

// Meta is one request's metadata. The edge fills ID, IP and UserAgent; the
// GraphQL layer records the operation name for the access log, and the
// operation's type, the request's outcome and its rate-limit refusals for the
// metrics; the database driver counts its statements cut by the statement
// timeout (the access log and the metrics).
type Meta struct {
	ID        string
	IP        string // the client's address, behind any trusted proxies
	UserAgent string

	mu         sync.Mutex
	operation  string
	opType     string // "" until an operation runs
	docName    string // the operation's name in the document, "" when anonymous
	outcome    string
	rateLimits []string
	quotas     []string
	timeouts   int // statements PostgreSQL cancelled at the statement timeout
}

// With returns ctx carrying m.
func With(ctx context.Context, m *Meta) context.Context { return context.WithValue(ctx, ctxKey{}, m) }

// From returns the request's metadata, or an empty Meta outside a request.
func From(ctx context.Context) *Meta {
	if m, ok := ctx.Value(ctxKey{}).(*Meta); ok {
		return m
	}
	return &Meta{}
}

// RequestID returns the request's id, or "" outside a request.
func RequestID(ctx context.Context) string { return From(ctx).ID }

// SetOperation records the GraphQL operation name.
func (m *Meta) SetOperation(name string) {
	m.mu.Lock()
	m.operation = name
	m.mu.Unlock()
}

// Operation returns the recorded operation name.
func (m *Meta) Operation() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.operation
}

// SetOperationType records the type of the operation being run ("query",
// "mutation", "subscription") and its name as the document spells it, "" for
// an anonymous one.
func (m *Meta) SetOperationType(typ, docName string) {
	m.mu.Lock()
	m.opType, m.docName = typ, docName
	m.mu.Unlock()
}

// OperationType returns what SetOperationType recorded: "", "" when no
// operation ran.
func (m *Meta) OperationType() (typ, docName string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opType, m.docName
}

// SetOutcome records the request's outcome: "OK", or the extensions.code of
// the first error of its response. The last call wins.
func (m *Meta) SetOutcome(code string) {
	m.mu.Lock()
	m.outcome = code
	m.mu.Unlock()
}

// Outcome returns the recorded outcome, "" when none was.
func (m *Meta) Outcome() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcome
}

// RateLimited records that the limit named limit refused part of the request.
func (m *Meta) RateLimited(limit string) {
	m.mu.Lock()
	m.rateLimits = append(m.rateLimits, limit)
	m.mu.Unlock()
}

// RateLimits returns the limits that refused part of the request, in order.
func (m *Meta) RateLimits() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.rateLimits...)
}

// QuotaExceeded records that the organization quota named limit refused part
// of the request.
func (m *Meta) QuotaExceeded(limit string) {
	m.mu.Lock()
	m.quotas = append(m.quotas, limit)
	m.mu.Unlock()
}

// Quotas returns the quotas that refused part of the request, in order.
func (m *Meta) Quotas() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.quotas...)
}

// StatementTimedOut records that PostgreSQL cancelled one of the request's
// statements at the statement timeout (the platform db layer calls it).
func (m *Meta) StatementTimedOut() {
	m.mu.Lock()
	m.timeouts++
	m.mu.Unlock()
}

// StatementTimeouts returns how many of the request's statements PostgreSQL
// cancelled at the statement timeout.
func (m *Meta) StatementTimeouts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.timeouts
}
