package mail

import "testing"

func TestQuoteMakesTextInertData(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Acme Inc", `"Acme Inc"`},
		{"Acme Inc.", `"Acme Inc."`},
		{"Café Crème", `"Café Crème"`},
		{"www.evil.example", `"www[.]evil[.]example"`},
		{"evil.example", `"evil[.]example"`},
		{"https://evil.example/x", `"https[://]evil[.]example/x"`},
		{"ftp://10.0.0.1", `"ftp[://]10[.]0[.]0[.]1"`},
		{"mail ceo@evil.example", `"mail ceo[@]evil[.]example"`},
		{"evil。example", `"evil[。]example"`},
		{"evil．example", `"evil[．]example"`},
		{"evil｡example", `"evil[｡]example"`},
		{`say "hi" \ bye`, `"say \"hi\" \\ bye"`},
		{"left\u202eright", `"left\u202eright"`},
		{"zero\u200bwidth", `"zero\u200bwidth"`},
		{"tab\there", `"tab\there"`},
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
