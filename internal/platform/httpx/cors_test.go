package httpx

import (
	"net/url"
	"strconv"
	"testing"
)

// FuzzLocalDevOrigin: what the development default accepts is exactly an http origin
// on localhost or 127.0.0.1, with no port or a port from 1 to 65535, written the one
// way a browser writes it (no path, user, query or trailing dot).
func FuzzLocalDevOrigin(f *testing.F) {
	for _, s := range []string{
		"http://localhost:5173", "http://127.0.0.1:3000", "http://localhost", "http://localhost.evil.com",
		"http://localhost:5173.evil.com", "http://localhost:5173@evil.com", "https://localhost:5173",
		"http://localhost:0", "http://localhost:65536", "http://localhost:05173", "http://[::1]:5173",
		"http://LOCALHOST:5173", "http://localhost:5173/", "http://127.0.0.1.:80", "null", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if !LocalDevOrigin(origin) {
			return
		}
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", origin, err)
		}
		if u.Scheme != "http" || (u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1") ||
			u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("accepted %q: scheme %q, host %q, user %v, path %q", origin, u.Scheme, u.Hostname(), u.User, u.Path)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
				t.Fatalf("accepted %q with port %q", origin, p)
			}
		}
		if got := "http://" + u.Host; got != origin {
			t.Fatalf("accepted %q, which a browser writes %q", origin, got)
		}
	})
}
