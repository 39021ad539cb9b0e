package mail

import (
	"strconv"
	"strings"
	"unicode"
)

// Quote returns text a user chose (an organization's name) as inert, quoted data
// for a plain-text body or a subject. Bodies are text/plain, so nothing in them
// is markup; but mail programs turn what looks like an address in plain text
// (https://…, www.…, evil.example, someone@evil.example) into a link. So Quote:
//
//   - wraps the text in double quotes, escaping quotes, backslashes and every
//     non-printable or invisible character as Go does (strconv.Quote: \", \\,
//     \u202e for a right-to-left override, \u200b for a zero-width space), so
//     the quoted text cannot end early, hide characters or reorder the line;
//   - brackets every dot (also the full-width and ideographic dots that browsers
//     read as dots) that is followed by a letter or a digit, every "://" and
//     every "@": "www[.]evil[.]example", "https[://]evil[.]example/login",
//     "it[@]evil[.]example". Without a dot or a scheme between letters, mail
//     programs find no domain name and no link in it. A dot that ends a word
//     ("Acme Inc.") is left alone.
func Quote(s string) string {
	q := strconv.Quote(s)
	var b strings.Builder
	b.Grow(len(q) + 8)
	rs := []rune(q)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ':' && i+2 < len(rs) && rs[i+1] == '/' && rs[i+2] == '/':
			b.WriteString("[://]")
			i += 2
		case r == '@':
			b.WriteString("[@]")
		case isDot(r) && i+1 < len(rs) && (unicode.IsLetter(rs[i+1]) || unicode.IsDigit(rs[i+1])):
			b.WriteRune('[')
			b.WriteRune(r)
			b.WriteRune(']')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isDot reports whether r separates the labels of a domain name for a browser
// (IDNA maps the full-width and ideographic full stops to '.').
func isDot(r rune) bool {
	return r == '.' || r == '\u3002' || r == '\uff0e' || r == '\uff61'
}
