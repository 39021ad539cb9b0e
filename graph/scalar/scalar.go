// Package scalar marshals the API's custom scalars. Malformed input is a
// BAD_USER_INPUT error, never an internal one.
package scalar

import (
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

// MarshalJSON writes a JSON value verbatim.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		w.Write(v) //nolint:errcheck
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
