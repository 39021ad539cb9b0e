// Package page holds the pieces of Relay-style keyset pagination: page sizes,
// opaque cursors and PageInfo.
package page

import (
	"encoding/base64"
	"encoding/json"

	"tenantgraph/internal/apperr"
)

// Page size limits.
const (
	DefaultFirst = 20
	MaxFirst     = 100
)

// Info is a connection's pageInfo.
type Info struct {
	HasNextPage bool
	EndCursor   *string
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
// and returns false.
func Decode(after *string, v any) (bool, error) {
	if after == nil || *after == "" {
		return false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*after)
	if err != nil || json.Unmarshal(b, v) != nil {
		return false, apperr.Invalid("after", "invalid cursor")
	}
	return true, nil
}

// Trim cuts rows fetched with limit first+1 to first and tells whether there is more.
func Trim[T any](rows []T, first int) ([]T, bool) {
	if len(rows) > first {
		return rows[:first], true
	}
	return rows, false
}
