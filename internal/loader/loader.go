// Package loader builds the per-request dataloaders. Loaders cache per request
// only: nothing is shared between viewers, and tenant data is keyed by
// organization id.
package loader

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/graph-gophers/dataloader/v7"

	"tenantgraph/internal/account"
	"tenantgraph/internal/org"
)

// Wait is how long a loader collects keys before it queries.
const Wait = 2 * time.Millisecond

// Sources are the batch lookups the loaders call.
type Sources struct {
	Users         func(ctx context.Context, ids []uuid.UUID) ([]*account.User, error)
	Organizations func(ctx context.Context, ids []uuid.UUID) ([]*org.Organization, error)
	Memberships   func(ctx context.Context, keys []org.MemberKey) ([]*org.Member, error)
	MemberCounts  func(ctx context.Context, keys []org.MemberCountKey) (map[org.MemberCountKey]int, error)
	Owners        func(ctx context.Context, orgs []uuid.UUID) ([]*org.Member, error)
	MemberPages   func(ctx context.Context, r org.MembersRequest) (map[uuid.UUID]*org.MemberConnection, []*org.Member, error)
}

// Loaders are one request's dataloaders.
type Loaders struct {
	User        *dataloader.Loader[uuid.UUID, *account.User]
	Org         *dataloader.Loader[uuid.UUID, *org.Organization]
	Membership  *dataloader.Loader[org.MemberKey, *org.Member]
	MemberCount *dataloader.Loader[org.MemberCountKey, int]
	Owner       *dataloader.Loader[uuid.UUID, *org.Member]
	MembersPage *dataloader.Loader[org.MembersPageKey, *org.MemberConnection]

	// The batch functions, for Prefetch.
	userBatch        dataloader.BatchFunc[uuid.UUID, *account.User]
	orgBatch         dataloader.BatchFunc[uuid.UUID, *org.Organization]
	memberCountBatch dataloader.BatchFunc[org.MemberCountKey, int]
	ownerBatch       dataloader.BatchFunc[uuid.UUID, *org.Member]
	membersPageBatch dataloader.BatchFunc[org.MembersPageKey, *org.MemberConnection]
}

func opts[K comparable, V any]() []dataloader.Option[K, V] {
	return []dataloader.Option[K, V]{dataloader.WithWait[K, V](Wait)}
}

// New returns fresh loaders for one request.
func New(s Sources) *Loaders {
	l := &Loaders{}
	l.userBatch = byKey(s.Users, func(u *account.User) uuid.UUID { return u.ID })
	l.User = dataloader.NewBatchedLoader(l.userBatch, opts[uuid.UUID, *account.User]()...)
	l.orgBatch = byKey(s.Organizations, func(o *org.Organization) uuid.UUID { return o.ID })
	l.Org = dataloader.NewBatchedLoader(l.orgBatch, opts[uuid.UUID, *org.Organization]()...)
	l.Membership = dataloader.NewBatchedLoader(byKey(s.Memberships, func(m *org.Member) org.MemberKey {
		return org.MemberKey{Org: m.OrganizationID, User: m.UserID}
	}), opts[org.MemberKey, *org.Member]()...)
	l.memberCountBatch = func(ctx context.Context, keys []org.MemberCountKey) []*dataloader.Result[int] {
		counts, err := s.MemberCounts(ctx, keys)
		return each(keys, err, func(k org.MemberCountKey) int { return counts[k] })
	}
	l.MemberCount = dataloader.NewBatchedLoader(l.memberCountBatch, opts[org.MemberCountKey, int]()...)
	l.ownerBatch = func(ctx context.Context, keys []uuid.UUID) []*dataloader.Result[*org.Member] {
		owners, err := s.Owners(ctx, keys)
		byOrg := make(map[uuid.UUID]*org.Member, len(owners))
		for _, o := range owners {
			byOrg[o.OrganizationID] = o
			l.primeUser(ctx, o.User)
		}
		return each(keys, err, func(k uuid.UUID) *org.Member { return byOrg[k] })
	}
	l.Owner = dataloader.NewBatchedLoader(l.ownerBatch, opts[uuid.UUID, *org.Member]()...)
	l.membersPageBatch = func(ctx context.Context, keys []org.MembersPageKey) []*dataloader.Result[*org.MemberConnection] {
		// One query per distinct (first, role): in practice one for the whole list.
		type shape struct {
			first int
			role  org.Role
		}
		groups := map[shape][]uuid.UUID{}
		for _, k := range keys {
			sh := shape{k.First, k.Role}
			groups[sh] = append(groups[sh], k.Org)
		}
		pages := map[org.MembersPageKey]*org.MemberConnection{}
		for sh, orgs := range groups {
			conns, members, err := s.MemberPages(ctx, org.MembersRequest{Orgs: orgs, First: sh.first, Role: sh.role})
			if err != nil {
				return each(keys, err, func(org.MembersPageKey) *org.MemberConnection { return nil })
			}
			for _, m := range members {
				l.primeUser(ctx, m.User)
			}
			for o, c := range conns {
				pages[org.MembersPageKey{Org: o, First: sh.first, Role: sh.role}] = c
			}
		}
		return each(keys, nil, func(k org.MembersPageKey) *org.MemberConnection { return pages[k] })
	}
	l.MembersPage = dataloader.NewBatchedLoader(l.membersPageBatch, opts[org.MembersPageKey, *org.MemberConnection]()...)
	return l
}

// PrefetchUsers loads the users with ids now, in one query, into the User loader.
func (l *Loaders) PrefetchUsers(ctx context.Context, ids []uuid.UUID) {
	prefetch(ctx, l.User, l.userBatch, ids)
}

// PrefetchOrgs loads the organizations with ids now, in one query.
func (l *Loaders) PrefetchOrgs(ctx context.Context, ids []uuid.UUID) {
	prefetch(ctx, l.Org, l.orgBatch, ids)
}

// PrefetchOwners loads the owners of orgs now, in one query, into the Owner loader.
func (l *Loaders) PrefetchOwners(ctx context.Context, orgs []uuid.UUID) {
	prefetch(ctx, l.Owner, l.ownerBatch, orgs)
}

// PrefetchMemberCounts loads the member counts of keys now, in one query.
func (l *Loaders) PrefetchMemberCounts(ctx context.Context, keys []org.MemberCountKey) {
	prefetch(ctx, l.MemberCount, l.memberCountBatch, keys)
}

// PrefetchMemberPages loads the first members page of orgs now, in one query.
func (l *Loaders) PrefetchMemberPages(ctx context.Context, keys []org.MembersPageKey) {
	prefetch(ctx, l.MembersPage, l.membersPageBatch, keys)
}

// prefetch runs a loader's batch function for keys right away and primes the
// loader with the results. Unlike queuing Loads against the loader's wait, this
// costs exactly one batch however the request's goroutines are scheduled. On
// error nothing is primed and the fields load (and report) on their own.
func prefetch[K comparable, V any](ctx context.Context, ld *dataloader.Loader[K, V], batch dataloader.BatchFunc[K, V], keys []K) {
	seen := make(map[K]bool, len(keys))
	uniq := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	keys = uniq
	if len(keys) == 0 {
		return
	}
	for i, r := range batch(ctx, keys) {
		if r.Error == nil {
			ld.Prime(ctx, keys[i], r.Data)
		}
	}
}

func (l *Loaders) primeUser(ctx context.Context, u *account.User) {
	if u != nil {
		l.User.Prime(ctx, u.ID, u)
	}
}

// byKey adapts a "find many" to a batch function: one result per key, in key
// order; a key with no row gets the zero value.
func byKey[K comparable, V any](find func(context.Context, []K) ([]V, error), key func(V) K) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		rows, err := find(ctx, keys)
		found := make(map[K]V, len(rows))
		for _, r := range rows {
			found[key(r)] = r
		}
		return each(keys, err, func(k K) V { return found[k] })
	}
}

// each builds one result per key, in key order, or the error for every key.
func each[K comparable, V any](keys []K, err error, get func(K) V) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(keys))
	for i, k := range keys {
		if err != nil {
			out[i] = &dataloader.Result[V]{Error: err}
		} else {
			out[i] = &dataloader.Result[V]{Data: get(k)}
		}
	}
	return out
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

// FromOK returns the request's loaders, or nil outside a request.
func FromOK(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}

// User loads one user by id (nil when there is none).
func User(ctx context.Context, id uuid.UUID) (*account.User, error) {
	return From(ctx).User.Load(ctx, id)()
}

// CountMembers loads a member count through the request's loader (the org
// service's totalCount of member pages: many pages, one query).
func CountMembers(ctx context.Context, k org.MemberCountKey) (int, error) {
	l := FromOK(ctx)
	if l == nil {
		return 0, errors.New("loader: no loaders in the context")
	}
	return l.MemberCount.Load(ctx, k)()
}

// Membership loads user's membership of orgID (nil when not a member).
func Membership(ctx context.Context, orgID, user uuid.UUID) (*org.Member, error) {
	return From(ctx).Membership.Load(ctx, org.MemberKey{Org: orgID, User: user})()
}

// PrimeMemberships records memberships already read (and their organizations).
func PrimeMemberships(ctx context.Context, ms []*org.Member, orgs []*org.Organization) {
	l := From(ctx)
	for _, m := range ms {
		l.Membership.Prime(ctx, org.MemberKey{Org: m.OrganizationID, User: m.UserID}, m)
	}
	for _, o := range orgs {
		l.Org.Prime(ctx, o.ID, o)
	}
}

// PrimeUsers records users already read.
func PrimeUsers(ctx context.Context, ms []*org.Member) {
	l := From(ctx)
	for _, m := range ms {
		l.primeUser(ctx, m.User)
	}
}

// ClearAll forgets everything cached so far: after a mutation, fields of its
// result must see the change.
func (l *Loaders) ClearAll() {
	l.User.ClearAll()
	l.Org.ClearAll()
	l.Membership.ClearAll()
	l.MemberCount.ClearAll()
	l.Owner.ClearAll()
	l.MembersPage.ClearAll()
}
