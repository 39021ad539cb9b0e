package httpx

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: ClientIP never panics; a client that is not a trusted proxy is its
// own address whatever X-Forwarded-For says; through a trusted proxy the answer is
// the connection's address or one of the forwarded ones, in canonical form.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.5:5000", "1.2.3.4, 198.51.100.1, 10.0.0.9", "10.0.0.0/8")
	f.Add("203.0.113.7:5000", "198.51.100.1", "10.0.0.0/8")
	f.Add("[::ffff:10.0.0.1]:1", "::ffff:203.0.113.9,junk", "10.0.0.0/8")
	f.Add("[fd00::1]:443", "2001:db8::1%eth0, fd00::2", "fd00::/8")
	f.Add("not an address", "", "")
	f.Add("10.0.0.5:5000", " , ,10.1.1.1", "0.0.0.0/0")
	f.Fuzz(func(t *testing.T, remote, xff, trustedCIDR string) {
		var trusted []netip.Prefix
		if p, err := netip.ParsePrefix(trustedCIDR); err == nil {
			trusted = []netip.Prefix{p.Masked()}
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientIP(r, trusted)
		r.Header.Del("X-Forwarded-For")
		direct := ClientIP(r, trusted)
		conn, err := netip.ParseAddr(direct)
		if err != nil {
			if got != direct {
				t.Fatalf("unparsable RemoteAddr %q: %q with the header, %q without", remote, got, direct)
			}
			return
		}
		if !inAny(conn, trusted) {
			if got != direct {
				t.Fatalf("untrusted %s spoofed %q with X-Forwarded-For %q", remote, got, xff)
			}
			return
		}
		addr, err := netip.ParseAddr(got)
		if err != nil || addr.String() != got || addr.Is4In6() {
			t.Fatalf("ClientIP = %q: not a canonical address", got)
		}
		if got == direct {
			return
		}
		found := false
		for _, hop := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap() == addr {
				found = true
			}
		}
		if !found {
			t.Fatalf("ClientIP = %q is neither the connection nor a forwarded address (%q)", got, xff)
		}
	})
}

// FuzzRequestID: the X-Request-Id a response carries is the client's when it is 8-64
// characters of [A-Za-z0-9._-], otherwise a generated one of the same alphabet:
// never anything a log line or a header could be split with.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"client-supplied-123", "short", strings.Repeat("a", 64), strings.Repeat("a", 65), "bad id", "a\r\nSet-Cookie: x=1", "ok.id_-12345", "é1234567"} {
		f.Add(s)
	}
	h := Edge(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, id string) {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		r.Header["X-Request-Id"] = []string{id}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get("X-Request-Id")
		if !validID.MatchString(got) {
			t.Fatalf("X-Request-Id %q for %q", got, id)
		}
		ok := len(id) >= 8 && len(id) <= 64 && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == ""
		if ok != (got == id) {
			t.Fatalf("X-Request-Id %q for %q (valid: %v)", got, id, ok)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("no nosniff")
		}
	})
}
