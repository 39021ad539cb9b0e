package main

import (
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
