// Package page is the one connection builder: Relay-style keyset pagination for
// every list of the API. A list is ordered by a sort value then an id (an
// Order); its cursors are Keys of that pair, decoded and checked by Parse. A
// store fetches Limit() rows after the cursor (the condition After writes), in
// Order.By(); Build (or Each, for a page of each of many parents) turns them
// into Connections whose totalCount is computed (by its own COUNT query) only
// when a client asks for it.
package page

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"

	"tenantgraph/internal/apperr"
)

// Page size limits.
const (
	DefaultFirst = 20
	MaxFirst     = 100
	// maxCursorBytes bounds what Decode will look at: real cursors are far smaller.
	maxCursorBytes = 512
)

// Info is a connection's pageInfo.
type Info struct {
	HasNextPage bool
	EndCursor   *string
}

// Request is a list's validated paging arguments: a page of First items after
// the keyset After (nil for the first page).
type Request[V Value] struct {
	First int
	After *Key[V]
}

// Parse validates first (nil means DefaultFirst, at most MaxFirst) and decodes
// after, a Key of ordering of ("" for a list with one ordering). A cursor that
// is not such a Key, or is one of another ordering, is BAD_USER_INPUT on after.
func Parse[V Value](first *int, after *string, of string) (Request[V], error) {
	n, err := First(first)
	if err != nil {
		return Request[V]{}, err
	}
	r := Request[V]{First: n}
	var k Key[V]
	ok, err := Decode(after, &k)
	if err != nil {
		return Request[V]{}, err
	}
	if ok && k.Of != of {
		return Request[V]{}, apperr.Invalid("after", "the cursor belongs to another ordering")
	}
	if ok {
		r.After = &k
	}
	return r, nil
}

// Limit is how many rows a store fetches: one more than the page, to learn
// whether a next page exists without counting.
func (r Request[V]) Limit() int { return r.First + 1 }

// Counter counts the whole list (not the page), for totalCount.
type Counter func(ctx context.Context) (int, error)

// CountCap is the most a capped count counts (Connection.Capped): a search's
// totalCount says "more than 10,000" (10,000, not exact) rather than count
// every match of a one-letter term on each keystroke (docs/api.md, "Limits
// and errors").
const CountCap = 10_000

// CappedCounter counts the whole list but stops at limit rows: the count, or
// limit when there are at least that many (db.CountUpTo).
type CappedCounter func(ctx context.Context, limit int) (int, error)

// Connection is one page of a list, bound to each area's XxxConnection type.
type Connection[T any] struct {
	Edges    []*Edge[T]
	PageInfo Info

	count  Counter
	capped bool // count is a CappedCounter's, given CountCap+1
	once   sync.Once
	total  int
	exact  bool
	err    error
}

// Edge is one item with its cursor.
type Edge[T any] struct {
	Node   T
	cursor func(T) string
}

// Cursor is the edge's opaque cursor, encoded only when a client selects it
// (two allocations and a JSON encoding per edge otherwise).
func (e *Edge[T]) Cursor() string { return e.cursor(e.Node) }

// Build makes the connection of rows fetched with r.Limit(): it keeps the first
// r.First, sets hasNextPage from the extra row, and gives each edge the cursor
// of its keyset. count is called only if the client selects totalCount.
func Build[T any, V Value](r Request[V], rows []T, keyset func(T) Key[V], count Counter) *Connection[T] {
	c := &Connection[T]{count: count}
	if len(rows) > r.First {
		rows, c.PageInfo.HasNextPage = rows[:r.First], true
	}
	cursor := func(row T) string { return Encode(keyset(row)) }
	edges := make([]Edge[T], len(rows)) // one allocation for the page's edges
	c.Edges = make([]*Edge[T], len(rows))
	for i, row := range rows {
		edges[i] = Edge[T]{Node: row, cursor: cursor}
		c.Edges[i] = &edges[i]
	}
	if n := len(rows); n > 0 {
		end := cursor(rows[n-1])
		c.PageInfo.EndCursor = &end
	}
	return c
}

// Each builds the connections of a page for each of many parents (members of
// many organizations, notes of many customers) from rows, each parent's rows
// fetched with r.Limit() by one query for all; count counts a parent's whole
// list, for its totalCount. Every parent gets a connection, an empty one when
// it has no rows.
func Each[P comparable, T any, V Value](r Request[V], parents []P, rows map[P][]T, keyset func(T) Key[V], count func(context.Context, P) (int, error)) map[P]*Connection[T] {
	out := make(map[P]*Connection[T], len(parents))
	for _, p := range parents {
		out[p] = Build(r, rows[p], keyset, func(ctx context.Context) (int, error) { return count(ctx, p) })
	}
	return out
}

// Counts is how the lists of many parents (a page for each, Each) count for
// their connections' totalCount: with Loaded when the wiring set it (the
// request's loader: the totals of many connections in one query), else with
// Direct, for the one parent asked.
type Counts[K comparable] struct {
	Loaded func(ctx context.Context, k K) (int, error)
	Direct func(ctx context.Context, keys []K) (map[K]int, error)
}

// Of counts k's list.
func (c Counts[K]) Of(ctx context.Context, k K) (int, error) {
	if c.Loaded != nil {
		return c.Loaded(ctx, k)
	}
	n, err := c.Direct(ctx, []K{k})
	return n[k], err
}

// Capped makes c's totalCount a capped count: count is asked for at most
// CountCap+1 rows; when it finds that many, TotalCount is CountCap and
// TotalCountIsExact false. It returns c.
func (c *Connection[T]) Capped(count CappedCounter) *Connection[T] {
	c.count = func(ctx context.Context) (int, error) { return count(ctx, CountCap+1) }
	c.capped = true
	return c
}

func (c *Connection[T]) counted(ctx context.Context) {
	c.once.Do(func() {
		c.exact = true
		if c.count == nil {
			return
		}
		c.total, c.err = c.count(ctx)
		if c.capped && c.total > CountCap {
			c.total, c.exact = CountCap, false
		}
	})
}

// TotalCount is the number of items in the whole list (every page), computed
// once, on demand; for a Capped connection at most CountCap.
func (c *Connection[T]) TotalCount(ctx context.Context) (int, error) {
	c.counted(ctx)
	return c.total, c.err
}

// TotalCountIsExact says whether TotalCount is the list's exact size: false
// only when a Capped count reached its cap (the list holds more than
// CountCap). Selected alone, it costs the same count.
func (c *Connection[T]) TotalCountIsExact(ctx context.Context) (bool, error) {
	c.counted(ctx)
	return c.exact, c.err
}

// Nodes returns the page's items.
func (c *Connection[T]) Nodes() []T {
	out := make([]T, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

// First validates a requested page size (nil means the default).
func First(first *int) (int, error) {
	if first == nil {
		return DefaultFirst, nil
	}
	if *first < 0 || *first > MaxFirst {
		return 0, apperr.Invalid("first", "first must be between 0 and %d", MaxFirst)
	}
	return *first, nil
}

// Encode makes an opaque cursor of the keyset values v.
func Encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a cursor made by Encode into v; a nil or empty cursor leaves v alone
// and returns false. Anything Encode could not have made is BAD_USER_INPUT on
// `after`, including a NUL character, which PostgreSQL text cannot hold.
func Decode(after *string, v any) (bool, error) {
	if after == nil || *after == "" {
		return false, nil
	}
	bad := apperr.Invalid("after", "invalid cursor")
	if len(*after) > maxCursorBytes {
		return false, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(*after)
	if err != nil || bytes.Contains(b, []byte(`\u0000`)) || json.Unmarshal(b, v) != nil {
		return false, bad
	}
	return true, nil
}

// Opt is an optional field of a patch: not Set leaves it alone; Set with a nil
// Value clears it.
type Opt[T any] struct {
	Set   bool
	Value *T
}
