package page

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestAfter(t *testing.T) {
	id := uuid.MustParse("4e69c132-8f0e-4c4b-9d5e-2b8a6a2f7c10")
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		o        Order
		cur      Cursor
		cond, by string
		args     []any
	}{
		{"first page", Order{Col: "n.created_at", ID: "n.id", Dir: Desc}, nil,
			"", "n.created_at DESC, n.id DESC", []any{"org"}},
		{"first page, typed nil", Order{Col: "n.created_at", ID: "n.id"}, (*Key[time.Time])(nil),
			"", "n.created_at, n.id", []any{"org"}},
		{"time, descending", Order{Col: "n.created_at", ID: "n.id", Dir: Desc}, &Key[time.Time]{V: at, ID: id},
			" AND (n.created_at, n.id) < ($2::timestamptz, $3::uuid)", "n.created_at DESC, n.id DESC", []any{"org", at, id}},
		{"name, folded", Order{Col: "c.name", ID: "c.id", Fold: true}, &Key[string]{Of: "NAME", V: "Acme", ID: id},
			` AND (lower(c.name) COLLATE "C", c.name COLLATE "C", c.id) > (lower($2::text) COLLATE "C", $2::text COLLATE "C", $3::uuid)`,
			`lower(c.name) COLLATE "C", c.name COLLATE "C", c.id`, []any{"org", "Acme", id}},
		{"name, folded, descending", Order{Col: "c.name", ID: "c.id", Fold: true, Dir: Desc}, &Key[string]{V: "Acme", ID: id},
			` AND (lower(c.name) COLLATE "C", c.name COLLATE "C", c.id) < (lower($2::text) COLLATE "C", $2::text COLLATE "C", $3::uuid)`,
			`lower(c.name) COLLATE "C" DESC, c.name COLLATE "C" DESC, c.id DESC`, []any{"org", "Acme", id}},
		{"unique value", Order{Col: "seq", Dir: Desc}, &Key[int64]{V: 42},
			" AND (seq) < ($2::bigint)", "seq DESC", []any{"org", int64(42)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cond, args := After(c.o, c.cur, []any{"org"})
			if cond != c.cond || !reflect.DeepEqual(args, c.args) {
				t.Errorf("After = %q, %v; want %q, %v", cond, args, c.cond, c.args)
			}
			if by := c.o.By(); by != c.by {
				t.Errorf("By = %q; want %q", by, c.by)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	id := uuid.New()
	for _, c := range []struct {
		name, after, of string
	}{
		{"another ordering", Encode(Key[string]{Of: "CREATED_AT", V: "x", ID: id}), "NAME"},
		{"an ordering on a list with one", Encode(Key[string]{Of: "NAME", V: "x", ID: id}), ""},
		{"no value", Encode(map[string]any{"i": id}), ""},
		{"an unknown member", Encode(map[string]any{"v": "x", "t": "y"}), ""},
		{"a value of another type", Encode(Key[int64]{V: 1}), ""},
		{"not an object", Encode("x"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse[string](nil, &c.after, c.of); err == nil {
				t.Fatalf("Parse(%q, %q) accepted it", c.after, c.of)
			}
		})
	}
}
