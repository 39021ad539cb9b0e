package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The statements per request are the mean over the access log lines of /query
// written between the two offsets; other lines, and a line cut at the start
// offset, do not count.
func TestSQLPerRequestReadsTheWindowOfTheAccessLog(t *testing.T) {
	before := `{"level":"INFO","msg":"request","path":"/query","status":200,"sql_statements":99}` + "\n"
	window := `{"level":"INFO","msg":"request","path":"/query","status":200,"sql_statements":3}` + "\n" +
		`{"level":"ERROR","msg":"query failed","sql_statements":50}` + "\n" +
		`{"level":"INFO","msg":"request","path":"/other","status":404,"sql_statements":40}` + "\n" +
		`{"level":"INFO","msg":"request","path":"/query","status":200,"sql_statements":5}` + "\n"
	after := `{"level":"INFO","msg":"request","path":"/query","status":200,"sql_statements":77}` + "\n"
	path := filepath.Join(t.TempDir(), "server.log")
	if err := os.WriteFile(path, []byte(before+window+after), 0o600); err != nil {
		t.Fatal(err)
	}
	from, to := int64(len(before)), int64(len(before)+len(window))
	if mean, n := sqlPerRequest(path, from, to); mean != 4 || n != 2 {
		t.Errorf("window: mean %v over %d lines, want 4 over 2", mean, n)
	}
	// Starting inside the first line skips that line rather than misreading it.
	if mean, n := sqlPerRequest(path, from-10, to); mean != 4 || n != 2 {
		t.Errorf("cut start: mean %v over %d lines, want 4 over 2", mean, n)
	}
	if _, n := sqlPerRequest(path, to, to); n != 0 {
		t.Errorf("empty window: %d lines, want 0", n)
	}
}

// A failed answer is counted under its first error's code, else under what
// can be said of it; the counts print most first.
func TestErrorCodes(t *testing.T) {
	cases := []struct {
		body   string
		status int
		err    error
		want   string
	}{
		{`{"errors":[{"message":"not enough stock","extensions":{"code":"CONFLICT","field":"input.lines[0].quantity"}}],"data":null}`, 200, nil, "CONFLICT"},
		{`{"errors":[{"message":"no","extensions":{"code":"RATE_LIMITED"}},{"extensions":{"code":"X"}}]}`, 429, nil, "RATE_LIMITED"},
		{`{"errors":[{"message":"odd"}]}`, 200, nil, "no code"},
		{`upstream gone`, 502, nil, "HTTP 502"},
		{``, 0, errors.New("connection reset"), "transport"},
	}
	for _, c := range cases {
		if got := errorCode([]byte(c.body), c.status, c.err); got != c.want {
			t.Errorf("errorCode(%.40q, %d, %v) = %q, want %q", c.body, c.status, c.err, got, c.want)
		}
	}
	if got := codesCell(map[string]int{"transport": 1, "CONFLICT": 3, "BAD": 1}); got != "CONFLICT 3, BAD 1, transport 1" {
		t.Errorf("codesCell = %q", got)
	}
	if got := codesCell(nil); got != "none" {
		t.Errorf("codesCell(nil) = %q", got)
	}
}
