// Package apperr is the one error type that crosses from services to the edge.
// A service returns *Error for anything a client may see; every other error is
// internal and is masked by the GraphQL error presenter.
package apperr

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Code is the machine-readable kind of an error, sent as extensions.code.
type Code string

const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	BadUserInput    Code = "BAD_USER_INPUT"
	Conflict        Code = "CONFLICT"
	RateLimited     Code = "RATE_LIMITED"
	// QuotaExceeded refuses a write that would take an organization past one
	// of its quotas; extensions.limit names it and extensions.max is its number.
	QuotaExceeded Code = "QUOTA_EXCEEDED"
	// Timeout: a statement ran past the database's statement timeout
	// (DATABASE_STATEMENT_TIMEOUT) and PostgreSQL cancelled it; nothing of the
	// request's transaction was written. The platform db layer maps it.
	Timeout Code = "TIMEOUT"
	// SlowConsumer ends a subscription that fell too far behind its events;
	// extensions.lastCursor is where to resume.
	SlowConsumer Code = "SLOW_CONSUMER"
	Internal     Code = "INTERNAL_SERVER_ERROR"
)

// Error is a client-safe error: its message is shown as is.
type Error struct {
	Code    Code
	Message string
	// Field names the input field at fault (sent as extensions.field), such as
	// "email" or "input[17].email"; empty when no one field is.
	Field string
	// Limit names the limit that refused a RATE_LIMITED request ("login_per_ip"),
	// for the metrics (tenantgraph_rate_limit_refusals_total), or the quota of a
	// QUOTA_EXCEEDED one ("seats", sent as extensions.limit too).
	Limit string
	// Extensions are sent with the error beside code and field (a
	// subscription's lastCursor).
	Extensions map[string]any
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns a client-safe error.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limited returns a RATE_LIMITED error from the limit named limit.
func Limited(limit, format string, args ...any) *Error {
	return &Error{Code: RateLimited, Message: fmt.Sprintf(format, args...), Limit: limit}
}

// Invalid returns a BAD_USER_INPUT error for one field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Message: fmt.Sprintf(format, args...), Field: field}
}

// As returns the client-safe error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// ErrUnauthenticated is returned when a viewer is required and absent or invalid.
var ErrUnauthenticated = &Error{Code: Unauthenticated, Message: "authentication required"}

// List is several client-safe errors at once (an import's refused rows): the
// GraphQL edge reports each as an error of its own, with its field.
type List []*Error

func (l List) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Sort orders the errors by field (input[2] before input[10]), keeping the
// order of errors on one field.
func (l List) Sort() {
	slices.SortStableFunc(l, func(a, b *Error) int { return compareFields(a.Field, b.Field) })
}

// compareFields compares field paths, reading runs of digits as numbers.
func compareFields(a, b string) int {
	for a != "" && b != "" {
		da, db := leadingDigits(a), leadingDigits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return cmp.Compare(na, nb)
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func leadingDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' && n < 9 {
		n++
	}
	return n
}
