// Package loader builds the per-request dataloaders. Loaders cache per request
// only: nothing is shared between viewers or tenants.
package loader

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/graph-gophers/dataloader/v7"

	"tenantgraph/internal/account"
)

// Wait is how long a loader collects keys before it queries.
const Wait = 2 * time.Millisecond

// Sources are the batch lookups the loaders call.
type Sources struct {
	Users func(ctx context.Context, ids []uuid.UUID) ([]*account.User, error)
}

// Loaders are one request's dataloaders.
type Loaders struct {
	User *dataloader.Loader[uuid.UUID, *account.User]
}

// New returns fresh loaders for one request.
func New(s Sources) *Loaders {
	return &Loaders{
		User: dataloader.NewBatchedLoader(byID(s.Users, func(u *account.User) uuid.UUID { return u.ID }),
			dataloader.WithWait[uuid.UUID, *account.User](Wait)),
	}
}

// byID adapts a "find many" to a batch function: one result per key, in key
// order; a key with no row gets nil.
func byID[K comparable, V any](find func(context.Context, []K) ([]V, error), key func(V) K) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		out := make([]*dataloader.Result[V], len(keys))
		rows, err := find(ctx, keys)
		if err != nil {
			for i := range out {
				out[i] = &dataloader.Result[V]{Error: err}
			}
			return out
		}
		byKey := make(map[K]V, len(rows))
		for _, r := range rows {
			byKey[key(r)] = r
		}
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: byKey[k]}
		}
		return out
	}
}

type ctxKey struct{}

// Middleware puts fresh loaders into every request's context.
func Middleware(s Sources, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, New(s))))
	})
}

// From returns the request's loaders.
func From(ctx context.Context) *Loaders {
	return ctx.Value(ctxKey{}).(*Loaders)
}

// User loads one user by id (nil when there is none).
func User(ctx context.Context, id uuid.UUID) (*account.User, error) {
	return From(ctx).User.Load(ctx, id)()
}
