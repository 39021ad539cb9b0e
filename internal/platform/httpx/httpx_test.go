package httpx

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"direct client, header ignored", "203.0.113.7:5000", "198.51.100.1", proxies, "203.0.113.7"},
		{"no trusted proxies, header ignored", "10.0.0.5:5000", "198.51.100.1", nil, "10.0.0.5"},
		{"through a trusted proxy", "10.0.0.5:5000", "198.51.100.1", proxies, "198.51.100.1"},
		{"spoofed left entries are skipped", "10.0.0.5:5000", "1.2.3.4, 198.51.100.1, 10.0.0.9", proxies, "198.51.100.1"},
		{"malformed entry stops the walk", "10.0.0.5:5000", "198.51.100.1, junk", proxies, "10.0.0.5"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.7]:5000", "", proxies, "203.0.113.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if got := ClientIP(r, c.trusted); got != c.want {
				t.Fatalf("ClientIP = %s, want %s", got, c.want)
			}
		})
	}
}

func TestEdgeRecoversPanicsWithRequestID(t *testing.T) {
	var logs bytes.Buffer
	h := Edge(slog.New(slog.NewTextHandler(&logs, nil)), nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/query", nil))
	id := rec.Header().Get("X-Request-Id")
	body := rec.Body.String()
	if rec.Code != 500 || !strings.Contains(body, `"code":"INTERNAL_SERVER_ERROR"`) || !strings.Contains(body, id) || strings.Contains(body, "boom") {
		t.Fatalf("response %d %s", rec.Code, body)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), id) {
		t.Fatalf("panic not logged with its request id: %s", logs.String())
	}
}
