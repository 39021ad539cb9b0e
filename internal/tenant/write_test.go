package tenant

import (
	"testing"

	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
)

// TestConstraintsMapNamesTheFieldOnlyWhenThereIsOne: a violation maps to its
// code and message, on its field under the prefix; one without a field (the
// request as a whole) names none, not the bare prefix.
func TestConstraintsMapNamesTheFieldOnlyWhenThereIsOne(t *testing.T) {
	c := Constraints{
		"a_key":  {Code: apperr.Conflict, Field: "sku", Message: "taken"},
		"b_fkey": {Code: apperr.Conflict, Message: "changed meanwhile"},
	}
	for name, want := range map[string]string{"a_key": "input.sku", "b_fkey": ""} {
		err := c.Map(&pq.Error{Code: "23505", Constraint: name}, "input.")
		e, ok := apperr.As(err)
		if !ok || e.Field != want || e.Code != apperr.Conflict {
			t.Errorf("%s: %#v, want CONFLICT on %q", name, err, want)
		}
	}
	if e, ok := apperr.As(c.Map(&pq.Error{Code: "23505", Constraint: "other"}, "")); ok {
		t.Errorf("an unknown constraint became a client error: %v", e)
	}
}
