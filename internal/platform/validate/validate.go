// Package validate holds input checks shared by several areas.
package validate

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"tenantgraph/internal/apperr"
)

// Name trims a display name and checks it has 1 to max characters and no control characters.
func Name(field, raw string, max int) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		return "", apperr.Invalid(field, "%s must be 1 to %d characters", field, max)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", apperr.Invalid(field, "%s must not contain control characters", field)
	}
	return s, nil
}

// MaxEmailLen is the longest email address in bytes (RFC 5321's path limit).
const MaxEmailLen = 254

// Email trims and lower-cases an address and checks its form (a bare
// local@domain, at most MaxEmailLen bytes): BAD_USER_INPUT on "email" otherwise.
func Email(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	bad := apperr.Invalid("email", "enter a valid email address")
	if e == "" || len(e) > MaxEmailLen || strings.IndexFunc(e, unicode.IsControl) >= 0 {
		return "", bad
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", bad
	}
	return e, nil
}

// Optional normalizes an optional field: nil or blank is none (nil), anything
// else is trimmed and given to check (such as Email, or a Name with its
// field and limit), whose result or error is returned.
func Optional(v *string, check func(string) (string, error)) (*string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil, nil
	}
	s, err := check(strings.TrimSpace(*v))
	if err != nil {
		return nil, err
	}
	return &s, nil
}
