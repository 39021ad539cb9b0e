package main

import (
	"strings"
	"testing"
	"time"
)

// csvLine is one csvlog record (PostgreSQL 15: 26 columns) with the columns
// the capture reads; the others are filled as PostgreSQL fills them.
func csvLine(db, session, app, severity, message, detail string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	cols := []string{"2026-11-27 17:21:10.123 UTC", q("postgres"), q(db), "4242", q("127.0.0.1:50000"), session, "7", q("SELECT"),
		"2026-11-27 17:21:00 UTC", "3/17", "0", severity, "00000", q(message), q(detail), "", "", "", "", "", "", "",
		q(app), q("client backend"), "", "0"}
	if detail == "" {
		cols[14] = ""
	}
	return strings.Join(cols, ",") + "\n"
}

// One request's statements, as the cluster logs them while other sessions
// (another database, the capture's own connection, a second pool connection
// of the server) log too, become one pgbench transaction: parameters inlined
// as literals, the request's sessions one after the other so that a
// transaction stays whole, everything else left out.
func TestPgbenchScriptFromTheCSVLog(t *testing.T) {
	log := csvLine("tenantgraph", "656.1", "", "LOG", "statement: BEGIN", "") +
		csvLine("tenantgraph", "657.2", "", "LOG", "execute <unnamed>: SELECT role FROM organization_members\n\tWHERE organization_id = $1 AND user_id = $2",
			"parameters: $1 = '39ddf335-87cf-a346-239c-d9388b496319', $2 = 'aa5e9052-7d65-0ea2-33b4-51ca4e547ee8'") +
		csvLine("tenantgraph", "656.1", "", "LOG", "execute S_1: UPDATE users SET name = $1, note = $10 WHERE id = $2 AND name <> '$1'",
			"parameters: $1 = 'O''Brien, \"Bob\"', $2 = NULL, $3 = '', $4 = '4', $5 = '5', $6 = '6', $7 = '7', $8 = '8', $9 = '9', $10 = 'at 10:30'") +
		csvLine("other", "658.3", "", "LOG", "statement: SELECT 'not ours'", "") +
		csvLine("tenantgraph", "659.4", captureApp, "LOG", "statement: SELECT pg_reload_conf()", "") +
		csvLine("tenantgraph", "656.1", "", "ERROR", "relation \"x\" does not exist", "") +
		csvLine("tenantgraph", "657.2", "", "LOG", "execute S_2/C_3: SELECT count(*)::int FROM users", "") +
		csvLine("tenantgraph", "656.1", "", "LOG", "statement: COMMIT;", "")
	got, n, err := pgbenchScript(strings.NewReader(log), "tenantgraph", captureApp, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := "BEGIN;\n" +
		`UPDATE users SET name = 'O''Brien, "Bob"', note = E'at 10\07230' WHERE id = NULL AND name <> '$1';` + "\n" +
		"COMMIT;\n" +
		"SELECT role FROM organization_members\n\tWHERE organization_id = '39ddf335-87cf-a346-239c-d9388b496319' AND user_id = 'aa5e9052-7d65-0ea2-33b4-51ca4e547ee8';\n" +
		"SELECT count(*)::int FROM users;\n"
	if got != want || n != 5 {
		t.Errorf("script (%d statements):\n%s\nwant (5):\n%s", n, got, want)
	}
}

func TestParseParameters(t *testing.T) {
	p, err := parseParameters(`parameters: $1 = 'a, $2 = ''b''', $2 = NULL, $3 = ''`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p[1] == nil || *p[1] != `a, $2 = 'b'` || p[2] != nil || p[3] == nil || *p[3] != "" {
		t.Errorf("parameters: %v", p)
	}
	for _, bad := range []string{"parameters: $1 = 'open", "parameters: $1 = 5", "context: x", "parameters: $1 = 'a' $2 = 'b'"} {
		if _, err := parseParameters(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A statement that pgbench would misread (":name" is one of its variables) or
// whose parameters the log does not give is refused, not measured wrongly.
func TestScriptRefusesWhatPgbenchWouldMisread(t *testing.T) {
	if err := pgbenchSafe("SELECT x::text, y ::int FROM t"); err != nil {
		t.Errorf("casts: %v", err)
	}
	if err := pgbenchSafe("SELECT * FROM t WHERE a = :id"); err == nil {
		t.Error(":id accepted")
	}
	if _, err := inlineParameters("SELECT $1, $2", map[int]*string{1: nil}); err == nil {
		t.Error("a missing $2 accepted")
	}
}

func TestMetricValue(t *testing.T) {
	text := "# HELP go_memstats_mallocs_total Total number of heap objects allocated.\n# TYPE go_memstats_mallocs_total counter\n" +
		"go_memstats_mallocs_total_other 1\ngo_memstats_mallocs_total 1.234567e+06\ngo_goroutines 12\n"
	if v, ok := metricValue(text, "go_memstats_mallocs_total"); !ok || v != 1234567 {
		t.Errorf("mallocs: %v %v", v, ok)
	}
	if _, ok := metricValue(text, "process_cpu_seconds_total"); ok {
		t.Error("a missing metric found")
	}
}

func TestDatabaseName(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/tenantgraph_base?sslmode=disable": "tenantgraph_base",
		"postgresql://u:p@h/db": "db",
	} {
		if got, err := databaseName(url); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", url, got, err, want)
		}
	}
	if _, err := databaseName("host=x dbname=y"); err == nil {
		t.Error("a conninfo string accepted")
	}
}

// Within a window (the captured request's time), a statement logged before
// or after it (the sealer's poll) is left out.
func TestPgbenchScriptKeepsTheRequestsTime(t *testing.T) {
	at := func(line, when string) string { return strings.Replace(line, "2026-11-27 17:21:10.123 UTC", when, 1) }
	log := at(csvLine("tenantgraph", "1.1", "", "LOG", "statement: SELECT 'before'", ""), "2026-11-27 17:21:10.099 UTC") +
		at(csvLine("tenantgraph", "1.2", "", "LOG", "statement: SELECT 'during'", ""), "2026-11-27 17:21:10.101 UTC") +
		at(csvLine("tenantgraph", "1.1", "", "LOG", "statement: SELECT 'after'", ""), "2026-11-27 17:21:10.106 UTC")
	from := time.Date(2026, 11, 27, 17, 21, 10, 100_000_000, time.UTC)
	got, n, err := pgbenchScript(strings.NewReader(log), "tenantgraph", captureApp, from, from.Add(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.Contains(got, "during") {
		t.Fatalf("script of %d statements:\n%s\nwant only the one during the window", n, got)
	}
}
