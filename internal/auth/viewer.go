package auth

import (
	"context"

	"github.com/google/uuid"
)

// Viewer is who a request acts as: identity only. Roles are read per request.
type Viewer struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
}

type viewerKey struct{}

type viewerState struct {
	viewer  Viewer
	present bool
}

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, viewerState{viewer: v, present: true})
}

// ViewerFrom returns the request's viewer; ok is false for anonymous requests
// and for requests whose token was missing, bad, expired or of the wrong type.
func ViewerFrom(ctx context.Context) (Viewer, bool) {
	s, _ := ctx.Value(viewerKey{}).(viewerState)
	return s.viewer, s.present
}
