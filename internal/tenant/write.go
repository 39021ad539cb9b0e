package tenant

import (
	"encoding/json"
	"fmt"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/db"
)

// Violation is the client-safe error that a write breaking one named
// constraint gets: its code, the input field at fault and the message.
type Violation struct {
	Code    apperr.Code
	Field   string
	Message string
}

// At returns the violation's error on field (an import row's "input[3].email").
func (v Violation) At(field string) *apperr.Error {
	return &apperr.Error{Code: v.Code, Field: field, Message: v.Message}
}

// Constraints maps an area's constraint names to the errors their violations
// are (a unique key: CONFLICT; a foreign key to another row of the
// organization: NOT_FOUND), so that the database, not a check before the
// write, decides races.
type Constraints map[string]Violation

// Map turns err, when it violates one of c's constraints, into that
// constraint's error with prefix before its field ("input." for an input
// object); any other error is returned wrapped as an internal one.
func (c Constraints) Map(err error, prefix string) error {
	if err == nil {
		return nil
	}
	if v, ok := c[db.Constraint(err)]; ok {
		if v.Field == "" { // the request as a whole: no field to name
			return v.At("")
		}
		return v.At(prefix + v.Field)
	}
	return fmt.Errorf("write: %w", err)
}

// Diff returns the fields whose values differ between two snapshots of a row
// (compared by their JSON: a nil pointer and null are one), as an audit event
// records a change: {"before": before, "after": after}. No difference gives
// two empty maps.
func Diff(a, b map[string]any) (before, after map[string]any) {
	before, after = map[string]any{}, map[string]any{}
	for k, va := range a {
		vb := b[k]
		ja, _ := json.Marshal(va)
		jb, _ := json.Marshal(vb)
		if string(ja) != string(jb) {
			before[k], after[k] = va, vb
		}
	}
	return before, after
}
