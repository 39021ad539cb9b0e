package page

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The shapes of the cursors the stores use (org, member, invitation lists; audit log).
type nameCursor struct {
	Name string    `json:"n"`
	ID   uuid.UUID `json:"i"`
}

type timeCursor struct {
	At time.Time `json:"t"`
	ID uuid.UUID `json:"i"`
}

// FuzzDecode: Decode never panics; it refuses anything over maxCursorBytes; what it
// accepts holds no NUL and only valid UTF-8 (PostgreSQL text), and encodes back to a
// cursor that decodes to the same keyset.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"", "x", "eyJuIjoiQWNtZSIsImkiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ",
		Encode(nameCursor{Name: "Zoë & Co", ID: uuid.MustParse("4e69c132-8f0e-4c4b-9d5e-2b8a6a2f7c10")}),
		Encode(timeCursor{At: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)}),
		Encode(nameCursor{Name: "a\x00b"}), Encode(int64(42)), Encode("\xff"), "!!!!", strings.Repeat("A", 600),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, after string) {
		var n nameCursor
		ok, err := Decode(&after, &n)
		if ok != (err == nil) && after != "" {
			t.Fatalf("Decode(%q) = %v, %v", after, ok, err)
		}
		if ok {
			if len(after) > maxCursorBytes {
				t.Fatalf("accepted a %d-byte cursor", len(after))
			}
			if strings.IndexByte(n.Name, 0) >= 0 || !utf8.ValidString(n.Name) {
				t.Fatalf("Decode(%q) gave the name %q", after, n.Name)
			}
			again := Encode(n)
			var m nameCursor
			if ok, err := Decode(&again, &m); !ok || err != nil || m != n {
				t.Fatalf("%+v: re-encoded cursor %q decodes to %+v, %v", n, again, m, err)
			}
		}
		var tc timeCursor
		if ok, _ := Decode(&after, &tc); ok {
			again := Encode(tc)
			var m timeCursor
			if ok, err := Decode(&again, &m); !ok || err != nil || !m.At.Equal(tc.At) || m.ID != tc.ID {
				t.Fatalf("%+v: re-encoded cursor decodes to %+v, %v", tc, m, err)
			}
		}
		var id int64
		if ok, _ := Decode(&after, &id); ok {
			again := Encode(id)
			var m int64
			if ok, err := Decode(&again, &m); !ok || err != nil || m != id {
				t.Fatalf("%d: re-encoded cursor decodes to %d, %v", id, m, err)
			}
		}
		// Parse agrees with Decode, and keeps `first` in range.
		first := len(after) % (MaxFirst + 3)
		r, err := Parse[nameCursor](&first, &after)
		if err == nil && (r.First != first || r.First > MaxFirst || (r.After != nil) != (after != "")) {
			t.Fatalf("Parse(%d, %q) = %+v", first, after, r)
		}
	})
}

// FuzzEncodeRoundTrip: every keyset a store can hold (text without NUL) survives
// Encode and Decode.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("Acme", []byte("0123456789abcdef"), int64(0))
	f.Add("Zoë\u2028\U0001F600", []byte{}, int64(-1))
	f.Fuzz(func(t *testing.T, name string, id []byte, unix int64) {
		if strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name) {
			t.Skip("PostgreSQL text cannot hold it")
		}
		var u uuid.UUID
		copy(u[:], id)
		in := nameCursor{Name: name, ID: u}
		c := Encode(in)
		var out nameCursor
		ok, err := Decode(&c, &out)
		if len(c) > maxCursorBytes {
			if ok {
				t.Fatalf("accepted a %d-byte cursor", len(c))
			}
			return
		}
		if !ok || err != nil || out != in {
			t.Fatalf("%+v -> %q -> %+v, %v", in, c, out, err)
		}
		c = Encode(unix)
		var n int64
		if ok, err := Decode(&c, &n); !ok || err != nil || n != unix {
			t.Fatalf("%d -> %q -> %d, %v", unix, c, n, err)
		}
	})
}
