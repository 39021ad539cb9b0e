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
// GraphQL layer records the operation name for the access log.
type Meta struct {
	ID        string
	IP        string // the client's address, behind any trusted proxies
	UserAgent string

	mu        sync.Mutex
	operation string
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
