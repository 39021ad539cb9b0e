package validate_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"tenantgraph/internal/platform/validate"
)

// FuzzName: what Name accepts fits the database's CHECK on names (trimmed, 1 to max
// characters, no control character) and holds no NUL and only valid UTF-8; Name is
// idempotent; what it refuses is BAD_USER_INPUT on the field.
func FuzzName(f *testing.F) {
	for _, s := range []string{"Acme Inc", "  Zoë  ", "", " ", "a\x00b", "a\nb", "\xff", "\u200b", "a\u2028b", "\u0085x", strings.Repeat("é", 101), "\U0001F600"} {
		f.Add(s, 100)
	}
	f.Fuzz(func(t *testing.T, raw string, max int) {
		max = 1 + abs(max)%200
		out, err := validate.Name("name", raw, max)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "BAD_USER_INPUT: name ") {
				t.Fatalf("Name(%q) error %v", raw, err)
			}
			return
		}
		n := utf8.RuneCountInString(out)
		if !utf8.ValidString(out) || n < 1 || n > max || strings.TrimSpace(out) != out || strings.Trim(out, " ") != out ||
			strings.IndexFunc(out, unicode.IsControl) >= 0 || strings.IndexByte(out, 0) >= 0 {
			t.Fatalf("Name(%q, %d) accepted %q", raw, max, out)
		}
		if again, err := validate.Name("name", out, max); err != nil || again != out {
			t.Fatalf("Name(%q) = %q, %v: not idempotent", out, again, err)
		}
	})
}

// FuzzNormalizeEmail: an accepted email fits the database's CHECK (lower-cased,
// trimmed, something@something, at most 254 bytes), holds no NUL, control character
// or invalid UTF-8, and normalizes to itself.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"Alice@Example.COM", " bob@example.test ", "no-at-sign", "a@b", "\"quoted name\"@example.com", "Alice <alice@example.com>",
		"a\x00@example.com", "é@example.com", "a@" + strings.Repeat("x", 260) + ".com", "İ@example.com", "a\u2028@example.com", "\xff@x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := validate.Email(raw)
		if err != nil {
			return
		}
		at := strings.IndexByte(out, '@')
		if out != strings.ToLower(strings.TrimSpace(out)) || len(out) > 254 || at < 1 || at == len(out)-1 ||
			!utf8.ValidString(out) || strings.IndexFunc(out, unicode.IsControl) >= 0 {
			t.Fatalf("NormalizeEmail(%q) accepted %q", raw, out)
		}
		if again, err := validate.Email(out); err != nil || again != out {
			t.Fatalf("NormalizeEmail(%q) = %q, %v: not idempotent", out, again, err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
