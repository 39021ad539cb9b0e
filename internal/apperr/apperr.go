// Package apperr is the one error type that crosses from services to the edge.
// A service returns *Error for anything a client may see; every other error is
// internal and is masked by the GraphQL error presenter.
package apperr

import (
	"errors"
	"fmt"
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
	Internal        Code = "INTERNAL_SERVER_ERROR"
)

// Error is a client-safe error: its message is shown as is.
type Error struct {
	Code    Code
	Message string
	// Field names the input field at fault (BAD_USER_INPUT only).
	Field string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns a client-safe error.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
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
