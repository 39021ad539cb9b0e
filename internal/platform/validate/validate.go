// Package validate holds input checks shared by several areas.
package validate

import (
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
