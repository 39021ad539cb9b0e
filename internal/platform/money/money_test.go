package money_test

import (
	"math"
	"testing"

	"tenantgraph/internal/platform/money"
)

func TestFormatted(t *testing.T) {
	for _, c := range []struct {
		m    money.Money
		want string
	}{
		{money.Money{Amount: 0, Currency: "USD"}, "USD 0.00"},
		{money.Money{Amount: 5, Currency: "USD"}, "USD 0.05"},
		{money.Money{Amount: 123450, Currency: "USD"}, "USD 1,234.50"},
		{money.Money{Amount: -123450, Currency: "EUR"}, "EUR -1,234.50"},
		{money.Money{Amount: 1234567, Currency: "JPY"}, "JPY 1,234,567"},
		{money.Money{Amount: 1500, Currency: "KWD"}, "KWD 1.500"},
		{money.Money{Amount: math.MaxInt64, Currency: "USD"}, "USD 92,233,720,368,547,758.07"},
		{money.Money{Amount: math.MinInt64, Currency: "USD"}, "USD -92,233,720,368,547,758.08"},
	} {
		if got := c.m.Formatted(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}
