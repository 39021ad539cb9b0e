package page

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzDecode: Decode never panics; it refuses anything over maxCursorBytes; what it
// accepts as a Key holds no NUL and only valid UTF-8 (PostgreSQL text), and encodes
// back to a cursor that decodes to the same keyset.
func FuzzDecode(f *testing.F) {
	id := uuid.MustParse("4e69c132-8f0e-4c4b-9d5e-2b8a6a2f7c10")
	for _, s := range []string{
		"", "x", "eyJ2IjoiQWNtZSIsImkiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ",
		Encode(Key[string]{V: "Zoë & Co", ID: id}),
		Encode(Key[string]{Of: "NAME", V: "acme", ID: id}),
		Encode(Key[time.Time]{V: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC), ID: id}),
		Encode(Key[time.Time]{Of: "CREATED_AT", V: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}),
		Encode(Key[int64]{V: 42}),
		// Shapes that are not Keys: the old per-store structs and bare seq, an unknown member, no value.
		Encode(map[string]any{"n": "Acme", "i": id}), Encode(int64(42)), `eyJ2IjoxLCJ4IjoyfQ`, Encode(map[string]any{"i": id}),
		Encode(Key[string]{V: "a\x00b"}), Encode("\xff"), "!!!!", strings.Repeat("A", 600),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, after string) {
		var n Key[string]
		ok, err := Decode(&after, &n)
		if ok != (err == nil) && after != "" {
			t.Fatalf("Decode(%q) = %v, %v", after, ok, err)
		}
		if ok {
			if len(after) > maxCursorBytes {
				t.Fatalf("accepted a %d-byte cursor", len(after))
			}
			for _, s := range []string{n.V, n.Of} {
				if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
					t.Fatalf("Decode(%q) gave the text %q", after, s)
				}
			}
			again := Encode(n)
			var m Key[string]
			if ok, err := Decode(&again, &m); !ok || err != nil || m != n {
				t.Fatalf("%+v: re-encoded cursor %q decodes to %+v, %v", n, again, m, err)
			}
		}
		var tc Key[time.Time]
		if ok, _ := Decode(&after, &tc); ok {
			again := Encode(tc)
			var m Key[time.Time]
			if ok, err := Decode(&again, &m); !ok || err != nil || !m.V.Equal(tc.V) || m.ID != tc.ID || m.Of != tc.Of {
				t.Fatalf("%+v: re-encoded cursor decodes to %+v, %v", tc, m, err)
			}
		}
		var seq Key[int64]
		if ok, _ := Decode(&after, &seq); ok {
			again := Encode(seq)
			var m Key[int64]
			if ok, err := Decode(&again, &m); !ok || err != nil || m != seq {
				t.Fatalf("%+v: re-encoded cursor decodes to %+v, %v", seq, m, err)
			}
		}
		// Parse agrees with Decode, keeps `first` in range and refuses a Key of
		// another ordering.
		first := len(after) % (MaxFirst + 3)
		for _, of := range []string{"", "NAME"} {
			r, err := Parse[string](&first, &after, of)
			if err == nil && (r.First != first || r.First > MaxFirst || (r.After != nil) != (after != "") || (r.After != nil && r.After.Of != of)) {
				t.Fatalf("Parse(%d, %q, %q) = %+v", first, after, of, r)
			}
		}
	})
}

// FuzzEncodeRoundTrip: every keyset a store can hold (text without NUL) survives
// Encode and Parse.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("Acme", "", []byte("0123456789abcdef"), int64(0))
	f.Add("Zoë\u2028\U0001F600", "NAME", []byte{}, int64(-1))
	f.Fuzz(func(t *testing.T, name, of string, id []byte, unix int64) {
		for _, s := range []string{name, of} {
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
				t.Skip("PostgreSQL text cannot hold it")
			}
		}
		var u uuid.UUID
		copy(u[:], id)
		in := Key[string]{Of: of, V: name, ID: u}
		c := Encode(in)
		r, err := Parse[string](nil, &c, of)
		if len(c) > maxCursorBytes {
			if err == nil {
				t.Fatalf("accepted a %d-byte cursor", len(c))
			}
			return
		}
		if err != nil || r.After == nil || *r.After != in {
			t.Fatalf("%+v -> %q -> %+v, %v", in, c, r.After, err)
		}
		if _, err := Parse[string](nil, &c, of+"x"); err == nil {
			t.Fatalf("%q: a cursor of ordering %q accepted for %q", c, of, of+"x")
		}
		at := time.Unix(unix%(1<<35), unix%1e9).UTC()
		c = Encode(Key[time.Time]{Of: of, V: at, ID: u})
		if r, err := Parse[time.Time](nil, &c, of); err != nil || !r.After.V.Equal(at) || r.After.ID != u {
			t.Fatalf("%v -> %q -> %+v, %v", at, c, r.After, err)
		}
		c = Encode(Key[int64]{V: unix})
		if r, err := Parse[int64](nil, &c, ""); err != nil || r.After.V != unix || r.After.ID != uuid.Nil {
			t.Fatalf("%d -> %q -> %+v, %v", unix, c, r.After, err)
		}
	})
}
