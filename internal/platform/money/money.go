// Package money is an amount of a currency: integer minor units (cents) and an
// ISO 4217 code, never a float. It holds no business rules.
package money

import (
	"strconv"
	"strings"
)

// Money is an amount in a currency's minor units.
type Money struct {
	Amount   int64
	Currency string
}

// minorUnits are the decimals of the currencies whose minor unit is not the
// cent (ISO 4217); every other currency has 2.
var minorUnits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// Decimals is how many decimals code's minor unit is.
func Decimals(code string) int {
	if d, ok := minorUnits[code]; ok {
		return d
	}
	return 2
}

// Formatted is the amount for people, with the code and the currency's
// decimals, grouped by thousands: "USD 1,234.50", "JPY -500".
func (m Money) Formatted() string {
	d := Decimals(m.Currency)
	a := m.Amount
	neg := a < 0
	digits := strconv.FormatUint(uint64(a), 10)
	if neg {
		digits = strconv.FormatUint(uint64(-a), 10) // -MinInt64 wraps to itself, which FormatUint reads right
	}
	for len(digits) <= d {
		digits = "0" + digits
	}
	whole, frac := digits[:len(digits)-d], digits[len(digits)-d:]
	var b strings.Builder
	b.WriteString(m.Currency)
	b.WriteByte(' ')
	if neg {
		b.WriteByte('-')
	}
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if d > 0 {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// codes are the active ISO 4217 currency codes (funds and precious metals
// excluded).
var codes = strings.Fields(`
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG
XOF XPF YER ZAR ZMW ZWG`)

var known = func() map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}()

// Known reports whether code is an active ISO 4217 currency code.
func Known(code string) bool { return known[code] }
