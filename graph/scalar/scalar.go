// Package scalar marshals the API's custom scalars. Malformed input is a
// BAD_USER_INPUT error, never an internal one.
package scalar

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"tenantgraph/internal/apperr"
)

// MarshalUUID writes an ID.
func MarshalUUID(id uuid.UUID) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(id.String())) //nolint:errcheck
	})
}

// UnmarshalUUID reads an ID; anything but a UUID string is bad input.
func UnmarshalUUID(v any) (uuid.UUID, error) {
	if s, ok := v.(string); ok {
		if id, err := uuid.Parse(s); err == nil {
			return id, nil
		}
	}
	return uuid.Nil, apperr.Invalid("", "not a valid ID")
}

// MarshalTime writes an RFC 3339 timestamp in UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano))) //nolint:errcheck
	})
}

// UnmarshalTime reads an RFC 3339 timestamp.
func UnmarshalTime(v any) (time.Time, error) {
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, apperr.Invalid("", "not an RFC 3339 time")
}

// MarshalJSON writes a JSON value compact: a jsonb column's text has a
// space after each colon and comma, and the response goes out as the
// executor writes it (graph's writeResponse). A value that is not JSON,
// which a jsonb column never holds, is written as null.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		var b bytes.Buffer
		if len(v) == 0 || json.Compact(&b, v) != nil {
			w.Write([]byte("null")) //nolint:errcheck
			return
		}
		w.Write(b.Bytes()) //nolint:errcheck
	})
}

// UnmarshalJSON reads any JSON value.
func UnmarshalJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apperr.Invalid("", "not JSON")
	}
	return b, nil
}

// MarshalMinorUnits writes an amount of minor units as a JSON string of
// digits: no client's number type rounds or overflows it (JavaScript's
// numbers are exact only to 2^53).
func MarshalMinorUnits(n int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(strconv.FormatInt(n, 10))) //nolint:errcheck
	})
}

// UnmarshalMinorUnits reads an amount of minor units: a string of digits with
// an optional leading minus, or a JSON integer.
func UnmarshalMinorUnits(v any) (int64, error) {
	bad := apperr.Invalid("", "an amount is whole minor units: a string of digits such as \"1250\" (or an integer)")
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil || (len(x) > 1 && (x[0] == '0' || x[0] == '+')) {
			return 0, bad
		}
		return n, nil
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return 0, bad
		}
		return n, nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	}
	return 0, bad
}
