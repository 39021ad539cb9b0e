package loader

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"tenantgraph/internal/account"
	"tenantgraph/internal/catalog"
	"tenantgraph/internal/customer"
	"tenantgraph/internal/org"
	"tenantgraph/internal/sales"
)

// countingSources answer nothing and count the batches they serve.
func countingSources(n *atomic.Int32) Sources {
	return Sources{
		Users: func(context.Context, []uuid.UUID) ([]*account.User, error) { n.Add(1); return nil, nil },
		Organizations: func(context.Context, []uuid.UUID) ([]*org.Organization, error) {
			n.Add(1)
			return nil, nil
		},
		Memberships: func(context.Context, []org.MemberKey) ([]*org.Member, error) { n.Add(1); return nil, nil },
		MemberCounts: func(context.Context, []org.MemberCountKey) (map[org.MemberCountKey]int, error) {
			n.Add(1)
			return nil, nil
		},
		Owners: func(context.Context, []uuid.UUID) ([]*org.Member, error) { n.Add(1); return nil, nil },
		Limits: func(context.Context, []uuid.UUID) (map[uuid.UUID]*org.OrganizationLimits, error) {
			n.Add(1)
			return nil, nil
		},
		MemberPages: func(context.Context, org.MembersRequest) (map[uuid.UUID]*org.MemberConnection, []*org.Member, error) {
			n.Add(1)
			return nil, nil, nil
		},
		NotesPages: func(context.Context, customer.NotesRequest) (map[customer.Key]*customer.CustomerNoteConnection, []*customer.CustomerNote, error) {
			n.Add(1)
			return nil, nil, nil
		},
		NoteCounts: func(context.Context, []customer.Key) (map[customer.Key]int, error) { n.Add(1); return nil, nil },
		Customers:  func(context.Context, []customer.Key) ([]*customer.Customer, error) { n.Add(1); return nil, nil },
		Products:   func(context.Context, []catalog.Key) ([]*catalog.Product, error) { n.Add(1); return nil, nil },
		MovementPages: func(context.Context, catalog.MovementsRequest) (map[catalog.Key]*catalog.MovementConnection, []*catalog.Movement, error) {
			n.Add(1)
			return nil, nil, nil
		},
		MoveCounts: func(context.Context, []catalog.Key) (map[catalog.Key]int, error) { n.Add(1); return nil, nil },
		OrderPages: func(context.Context, sales.CustomersRequest) (map[sales.CustomerKey]*sales.OrderConnection, error) {
			n.Add(1)
			return nil, nil
		},
		OrderCounts: func(context.Context, []sales.CustomerKey) (map[sales.CustomerKey]int, error) {
			n.Add(1)
			return nil, nil
		},
		Lifetimes: func(context.Context, []sales.CustomerKey) (map[sales.CustomerKey]sales.Value, error) {
			n.Add(1)
			return nil, nil
		},
	}
}

// TestClearAllReachesEveryLoader: every loader of Loaders is in the registry,
// and after ClearAll none answers from its cache: a loader added without the
// registry, or one ClearAll misses, fails here.
func TestClearAllReachesEveryLoader(t *testing.T) {
	ctx := context.Background()
	var batches atomic.Int32
	l := New(countingSources(&batches))
	v := reflect.ValueOf(l).Elem()
	var loaders []reflect.Value
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		field := v.Field(i)
		k, ok := field.Interface().(interface{ clear() })
		if !ok || field.IsNil() {
			t.Fatalf("Loaders.%s is not a loader made by keyed", f.Name)
		}
		found := false
		for _, r := range l.all {
			found = found || r == k
		}
		if !found {
			t.Errorf("Loaders.%s is not in the registry: ClearAll would miss it", f.Name)
		}
		loaders = append(loaders, field)
	}
	if len(l.all) != len(loaders) {
		t.Errorf("the registry holds %d loaders, Loaders has %d", len(l.all), len(loaders))
	}

	// Each loader, primed with a key, answers it from its cache; once cleared,
	// with a batch of its own.
	load := func() {
		for _, k := range loaders {
			key := reflect.Zero(k.MethodByName("Load").Type().In(1))
			thunk := k.MethodByName("Load").Call([]reflect.Value{reflect.ValueOf(ctx), key})[0]
			thunk.Call(nil)
		}
	}
	for _, k := range loaders {
		prime := k.MethodByName("Prime")
		prime.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.Zero(prime.Type().In(1)), reflect.Zero(prime.Type().In(2))})
	}
	load()
	if n := batches.Load(); n != 0 {
		t.Fatalf("primed loaders ran %d batches", n)
	}
	l.ClearAll()
	load()
	if n := batches.Load(); int(n) != len(loaders) {
		t.Fatalf("after ClearAll, %d loaders ran a batch, want all %d", n, len(loaders))
	}
}

// TestPagesOneFetchPerShape: a page loader's batch groups its keys by shape
// and gives every key its parent's page.
func TestPagesOneFetchPerShape(t *testing.T) {
	type key struct {
		parent, first int
	}
	var calls atomic.Int32
	batch := pages(func(k key) (int, int) { return k.parent, k.first },
		func(_ context.Context, first int, parents []int) (map[int]string, error) {
			calls.Add(1)
			out := map[int]string{}
			for _, p := range parents {
				out[p] = string(rune('a'+p)) + string(rune('0'+first))
			}
			return out, nil
		})
	keys := []key{{1, 2}, {2, 2}, {3, 5}, {1, 5}}
	got := batch(context.Background(), keys)
	if calls.Load() != 2 {
		t.Errorf("%d fetches for 2 shapes", calls.Load())
	}
	for i, want := range []string{"b2", "c2", "d5", "b5"} {
		if got[i].Error != nil || got[i].Data != want {
			t.Errorf("key %v: %q, %v; want %q", keys[i], got[i].Data, got[i].Error, want)
		}
	}
}
