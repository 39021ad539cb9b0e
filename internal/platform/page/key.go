package page

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Value is what a list is ordered by: a time, a text or an integer.
type Value interface {
	time.Time | string | int64
}

// Key is a row's place in a keyset ordering, and so the cursor of the page
// after it: the sort value V, then the id that breaks its ties. Of names the
// ordering of a list that has several (customers by NAME, CREATED_AT,
// UPDATED_AT); Parse refuses a cursor made for another ordering.
//
// Encoded, a cursor is base64url of {"o":..., "v":..., "i":...} ("o" and "i"
// left out when empty). Cursors of the shapes before this one (per-store
// structs, the audit log's bare seq) are refused as invalid.
type Key[V Value] struct {
	Of string    `json:"o,omitempty"`
	V  V         `json:"v"`
	ID uuid.UUID `json:"i,omitzero"`
}

var errKey = errors.New("not a keyset")

// UnmarshalJSON reads only what MarshalJSON writes: an object with a value of
// the key's type, no other member.
func (k *Key[V]) UnmarshalJSON(b []byte) error {
	var w struct {
		Of string    `json:"o"`
		V  *V        `json:"v"`
		ID uuid.UUID `json:"i"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil || w.V == nil {
		return errKey
	}
	*k = Key[V]{Of: w.Of, V: *w.V, ID: w.ID}
	return nil
}

// OrderDirection is ascending or descending.
type OrderDirection string

const (
	Asc  OrderDirection = "ASC"
	Desc OrderDirection = "DESC"
)

// Order is a keyset ordering in SQL: by Col, then by ID, both in Dir.
type Order struct {
	Col string // the sort value, e.g. "n.created_at"
	ID  string // the tie-break, e.g. "n.id"; "" when Col is unique (the audit log's seq)
	Dir OrderDirection
	// Fold orders the text Col case-insensitively, then byte by byte, whatever
	// the database's collation: lower(Col) COLLATE "C", Col COLLATE "C".
	Fold bool
}

func (o Order) cols() []string {
	cols := []string{o.Col}
	if o.Fold {
		cols = []string{"lower(" + o.Col + `) COLLATE "C"`, o.Col + ` COLLATE "C"`}
	}
	if o.ID != "" {
		cols = append(cols, o.ID)
	}
	return cols
}

// By is the ORDER BY list of o, e.g. `lower(c.name) COLLATE "C" DESC, c.name COLLATE "C" DESC, c.id DESC`.
func (o Order) By() string {
	cols := o.cols()
	if o.Dir == Desc {
		for i := range cols {
			cols[i] += " DESC"
		}
	}
	return strings.Join(cols, ", ")
}

// Cursor is a decoded Key, whatever its value type: what a store's page
// continues after. A store whose orderings differ in value type (customers by
// name or by time) takes one; the others take their *Key[V].
type Cursor interface {
	after(o Order, args []any) (string, []any)
}

// After is the condition that keeps the rows after cur in o, to append to a
// WHERE clause: " AND (col, id) > ($n::type, $m::uuid)" (< when descending),
// with cur's values appended to args as $n and $m. Without a cursor (nil: the
// first page) it is "" and args.
func After(o Order, cur Cursor, args []any) (string, []any) {
	if cur == nil {
		return "", args
	}
	return cur.after(o, args)
}

func (k *Key[V]) after(o Order, args []any) (string, []any) {
	if k == nil {
		return "", args
	}
	args = append(args, k.V)
	v := fmt.Sprintf("$%d::%s", len(args), sqlType(k.V))
	vals := []string{v}
	if o.Fold {
		vals = []string{"lower(" + v + `) COLLATE "C"`, v + ` COLLATE "C"`}
	}
	if o.ID != "" {
		args = append(args, k.ID)
		vals = append(vals, fmt.Sprintf("$%d::uuid", len(args)))
	}
	op := ">"
	if o.Dir == Desc {
		op = "<"
	}
	return fmt.Sprintf(" AND (%s) %s (%s)", strings.Join(o.cols(), ", "), op, strings.Join(vals, ", ")), args
}

func sqlType(v any) string {
	switch v.(type) {
	case time.Time:
		return "timestamptz"
	case int64:
		return "bigint"
	default:
		return "text"
	}
}
