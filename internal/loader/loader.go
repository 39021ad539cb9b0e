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
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/org"
	"tenantgraph/internal/sales"
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
	Limits        func(ctx context.Context, orgs []uuid.UUID) (map[uuid.UUID]*org.OrganizationLimits, error)
	MemberPages   func(ctx context.Context, r org.MembersRequest) (map[uuid.UUID]*org.MemberConnection, []*org.Member, error)
	NotesPages    func(ctx context.Context, r customer.NotesRequest) (map[customer.Key]*customer.CustomerNoteConnection, []*customer.CustomerNote, error)
	NoteCounts    func(ctx context.Context, keys []customer.Key) (map[customer.Key]int, error)
	Customers     func(ctx context.Context, keys []customer.Key) ([]*customer.Customer, error)
	Products      func(ctx context.Context, keys []catalog.Key) ([]*catalog.Product, error)
	MovementPages func(ctx context.Context, r catalog.MovementsRequest) (map[catalog.Key]*catalog.MovementConnection, []*catalog.Movement, error)
	MoveCounts    func(ctx context.Context, keys []catalog.Key) (map[catalog.Key]int, error)
	OrderPages    func(ctx context.Context, r sales.CustomersRequest) (map[sales.CustomerKey]*sales.OrderConnection, error)
	OrderCounts   func(ctx context.Context, keys []sales.CustomerKey) (map[sales.CustomerKey]int, error)
	Lifetimes     func(ctx context.Context, keys []sales.CustomerKey) (map[sales.CustomerKey]sales.Value, error)
}

// Loaders are one request's dataloaders. Each is made through the registry
// (keyed), so that ClearAll reaches every one.
type Loaders struct {
	all registry
	src Sources

	User        *Keyed[uuid.UUID, *account.User]
	Org         *Keyed[uuid.UUID, *org.Organization]
	Membership  *Keyed[org.MemberKey, *org.Member]
	MemberCount *Keyed[org.MemberCountKey, int]
	Owner       *Keyed[uuid.UUID, *org.Member]
	Limits      *Keyed[uuid.UUID, *org.OrganizationLimits]
	MembersPage *Keyed[org.MembersPageKey, *org.MemberConnection]
	// NotesPage is the first page of a customer's timeline; NoteCount its length.
	NotesPage *Keyed[customer.NotesPageKey, *customer.CustomerNoteConnection]
	NoteCount *Keyed[customer.Key, int]
	Customer  *Keyed[customer.Key, *customer.Customer]
	Product   *Keyed[catalog.Key, *catalog.Product]
	// MovementsPage is the first page of a product's ledger; MovementCount its length.
	MovementsPage *Keyed[catalog.MovementsPageKey, *catalog.MovementConnection]
	MovementCount *Keyed[catalog.Key, int]
	// OrdersPage is the first page of a customer's orders; OrderCount its length.
	OrdersPage *Keyed[OrdersPageKey, *sales.OrderConnection]
	OrderCount *Keyed[sales.CustomerKey, int]
	Lifetime   *Keyed[sales.CustomerKey, sales.Value]
}

// OrdersPageKey asks for the first page of a customer's orders.
type OrdersPageKey struct {
	sales.CustomerKey
	First int
}

// Keyed is a dataloader with its batch function and cache at hand: a list's
// keys can be loaded at once (Prefetch) and a single key too (Now), neither
// waiting on the loader's batch timer.
type Keyed[K comparable, V any] struct {
	*dataloader.Loader[K, V]
	batch dataloader.BatchFunc[K, V]
	cache *dataloader.InMemoryCache[K, V]
}

// registry is every loader of a request: the only way to make one is keyed,
// which records it here.
type registry []interface{ clear() }

// keyed makes a loader of batch and records it in r.
func keyed[K comparable, V any](r *registry, batch dataloader.BatchFunc[K, V]) *Keyed[K, V] {
	cache := dataloader.NewCache[K, V]()
	k := &Keyed[K, V]{
		Loader: dataloader.NewBatchedLoader(batch, dataloader.WithWait[K, V](Wait), dataloader.WithCache[K, V](cache)),
		batch:  batch,
		cache:  cache,
	}
	*r = append(*r, k)
	return k
}

func (k *Keyed[K, V]) clear() { k.ClearAll() }

// Load is dataloader's Load, except that a cached key's thunk comes straight
// from the cache: dataloader's makes a channel, a result and a trace closure
// on every call, a hit too, and a prefetched list calls it for every item.
func (k *Keyed[K, V]) Load(ctx context.Context, key K) dataloader.Thunk[V] {
	if t, ok := k.cache.Get(ctx, key); ok {
		return t
	}
	return k.Loader.Load(ctx, key)
}

// Now loads key at once: from the cache when it is there, else with one
// batch of its own, primed into the loader. For the lookups a request makes
// once, one after the other (the viewer, the @hasRole membership, a root
// field's organization); a list's items go through Load and Prefetch.
func (k *Keyed[K, V]) Now(ctx context.Context, key K) (V, error) {
	if _, ok := k.cache.Get(ctx, key); ok {
		return k.Load(ctx, key)()
	}
	r := k.batch(ctx, []K{key})[0]
	if r.Error == nil {
		k.Prime(ctx, key, r.Data)
	}
	return r.Data, r.Error
}

// Prefetch runs the batch function for the keys not cached yet, right away,
// and primes the loader with the results. Unlike queuing Loads against the
// loader's wait, this costs exactly one batch however the request's goroutines
// are scheduled. On error nothing is primed and the fields load (and report)
// on their own.
func (k *Keyed[K, V]) Prefetch(ctx context.Context, keys []K) {
	seen := make(map[K]bool, len(keys))
	todo := keys[:0:0]
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		if _, ok := k.cache.Get(ctx, key); !ok {
			todo = append(todo, key)
		}
	}
	if len(todo) == 0 {
		return
	}
	for i, r := range k.batch(ctx, todo) {
		if r.Error == nil {
			k.Prime(ctx, todo[i], r.Data)
		}
	}
}

// New returns fresh loaders for one request.
func New(s Sources) *Loaders {
	l := &Loaders{src: s}
	r := &l.all
	l.User = keyed(r, byKey(s.Users, func(u *account.User) uuid.UUID { return u.ID }))
	l.Org = keyed(r, byKey(s.Organizations, func(o *org.Organization) uuid.UUID { return o.ID }))
	l.Membership = keyed(r, byKey(s.Memberships, func(m *org.Member) org.MemberKey {
		return org.MemberKey{Org: m.OrganizationID, User: m.UserID}
	}))
	l.MemberCount = keyed(r, byMap(s.MemberCounts))
	l.Owner = keyed(r, func(ctx context.Context, keys []uuid.UUID) []*dataloader.Result[*org.Member] {
		owners, err := s.Owners(ctx, keys)
		byOrg := make(map[uuid.UUID]*org.Member, len(owners))
		for _, o := range owners {
			byOrg[o.OrganizationID] = o
			l.primeUser(ctx, o.User)
		}
		return each(keys, err, func(k uuid.UUID) *org.Member { return byOrg[k] })
	})
	l.Limits = keyed(r, byMap(s.Limits))
	type membersShape struct {
		first int
		role  org.Role
	}
	l.MembersPage = keyed(r, pages(
		func(k org.MembersPageKey) (uuid.UUID, membersShape) { return k.Org, membersShape{k.First, k.Role} },
		func(ctx context.Context, sh membersShape, orgs []uuid.UUID) (map[uuid.UUID]*org.MemberConnection, error) {
			conns, members, err := s.MemberPages(ctx, org.MembersRequest{Orgs: orgs, First: sh.first, Role: sh.role})
			for _, m := range members {
				l.primeUser(ctx, m.User)
			}
			return conns, err
		}))
	l.NotesPage = keyed(r, pages(
		func(k customer.NotesPageKey) (customer.Key, int) { return k.Key, k.First },
		func(ctx context.Context, first int, custs []customer.Key) (map[customer.Key]*customer.CustomerNoteConnection, error) {
			conns, _, err := s.NotesPages(ctx, customer.NotesRequest{Customers: custs, First: first})
			return conns, err
		}))
	l.NoteCount = keyed(r, byMap(s.NoteCounts))
	l.Customer = keyed(r, byKey(s.Customers, func(c *customer.Customer) customer.Key {
		return customer.Key{Org: c.OrganizationID, Customer: c.ID}
	}))
	l.Product = keyed(r, byKey(s.Products, func(p *catalog.Product) catalog.Key {
		return catalog.Key{Org: p.OrganizationID, Product: p.ID}
	}))
	l.MovementsPage = keyed(r, pages(
		func(k catalog.MovementsPageKey) (catalog.Key, int) { return k.Key, k.First },
		func(ctx context.Context, first int, ps []catalog.Key) (map[catalog.Key]*catalog.MovementConnection, error) {
			conns, _, err := s.MovementPages(ctx, catalog.MovementsRequest{Products: ps, First: first})
			return conns, err
		}))
	l.MovementCount = keyed(r, byMap(s.MoveCounts))
	l.OrdersPage = keyed(r, pages(
		func(k OrdersPageKey) (sales.CustomerKey, int) { return k.CustomerKey, k.First },
		func(ctx context.Context, first int, custs []sales.CustomerKey) (map[sales.CustomerKey]*sales.OrderConnection, error) {
			return s.OrderPages(ctx, sales.CustomersRequest{Customers: custs, First: first})
		}))
	l.OrderCount = keyed(r, byMap(s.OrderCounts))
	l.Lifetime = keyed(r, byMap(s.Lifetimes))
	return l
}

// PrefetchMembersCounted prefetches the first pages of keys' member lists
// (every role: Role "") and, in the same statement, their organizations'
// member counts (MemberCount): the dashboard's members and memberCount. Keys
// with a role are left to MembersPage, and nothing is primed on error.
func (l *Loaders) PrefetchMembersCounted(ctx context.Context, keys []org.MembersPageKey) {
	byFirst := map[int][]uuid.UUID{}
	for _, k := range keys {
		if k.Role != "" {
			continue
		}
		if _, ok := l.MembersPage.cache.Get(ctx, k); !ok {
			byFirst[k.First] = append(byFirst[k.First], k.Org)
		}
	}
	for first, orgs := range byFirst {
		conns, members, err := l.src.MemberPages(ctx, org.MembersRequest{Orgs: orgs, First: first, Counted: true})
		if err != nil {
			continue
		}
		for _, m := range members {
			l.primeUser(ctx, m.User)
		}
		for o, c := range conns {
			l.MembersPage.Prime(ctx, org.MembersPageKey{Org: o, First: first}, c)
			if n, err := c.TotalCount(ctx); err == nil {
				l.MemberCount.Prime(ctx, org.MemberCountKey{Org: o}, n)
			}
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

// byMap adapts a lookup that answers with a map (counts) to a batch function:
// a key missing from the map gets the zero value.
func byMap[K comparable, V any](find func(context.Context, []K) (map[K]V, error)) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		found, err := find(ctx, keys)
		return each(keys, err, func(k K) V { return found[k] })
	}
}

// pages makes the batch function of a page loader: the first page of a list
// for each of many parents (members of many organizations, notes of many
// customers, lines of many orders). split parts a key into its parent and its
// shape (page size, filters); fetch is called once per distinct shape, in
// practice once for the whole list, with every parent of that shape, and
// answers with each parent's page.
func pages[K, P, S comparable, V any](split func(K) (P, S), fetch func(ctx context.Context, shape S, parents []P) (map[P]V, error)) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		parents := map[S][]P{}
		for _, k := range keys {
			p, sh := split(k)
			parents[sh] = append(parents[sh], p)
		}
		found := make(map[S]map[P]V, len(parents))
		for sh, ps := range parents {
			got, err := fetch(ctx, sh, ps)
			if err != nil {
				return each(keys, err, func(K) V { var zero V; return zero })
			}
			found[sh] = got
		}
		return each(keys, nil, func(k K) V {
			p, sh := split(k)
			return found[sh][p]
		})
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

// With returns ctx carrying l (a websocket operation's, or one event's).
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
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

// count loads a count through the request's count loader that pick names:
// the services' page.Counts.Loaded (many connections' totalCounts, one query).
func count[K comparable](pick func(*Loaders) *Keyed[K, int]) func(context.Context, K) (int, error) {
	return func(ctx context.Context, k K) (int, error) {
		l := FromOK(ctx)
		if l == nil {
			return 0, errors.New("loader: no loaders in the context")
		}
		return pick(l).Load(ctx, k)()
	}
}

// CountMembers and CountNotes count members pages' and timelines' totals
// through the request's loaders.
var (
	CountMembers = count(func(l *Loaders) *Keyed[org.MemberCountKey, int] { return l.MemberCount })
	CountNotes   = count(func(l *Loaders) *Keyed[customer.Key, int] { return l.NoteCount })
	CountOrders  = count(func(l *Loaders) *Keyed[sales.CustomerKey, int] { return l.OrderCount })
	CountMoves   = count(func(l *Loaders) *Keyed[catalog.Key, int] { return l.MovementCount })
)

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

// ClearAll forgets everything every loader cached so far: after a mutation,
// fields of its result must see the change.
func (l *Loaders) ClearAll() {
	for _, k := range l.all {
		k.clear()
	}
}
