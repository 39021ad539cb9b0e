package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The ceiling: what PostgreSQL does per second with the very statements that
// one request of a scenario sends, with nothing of ours in the way. The
// statements are captured from the cluster's csvlog (log_statement = 'all'
// for the time of one request), written as one pgbench transaction, and run
// by pgbench, prepared, at the scenario's connection count.

// captureApp is the application_name of the capture's own connection, whose
// statements (ALTER SYSTEM, pg_reload_conf) the capture leaves out.
const captureApp = "tenantgraph-loadtest-capture"

// Columns of PostgreSQL's csvlog (PostgreSQL 13 and later; 0-based).
const (
	csvTime     = 0
	csvDatabase = 2
	csvSession  = 5
	csvSeverity = 11
	csvMessage  = 13
	csvDetail   = 14
	csvApp      = 22
)

// executeLine is a statement logged at Execute (extended protocol): "execute
// <unnamed>: SQL", "execute name: SQL", "execute name/portal: SQL".
var executeLine = regexp.MustCompile(`(?s)^execute [^:]*: (.*)$`)

// csvTimeLayout is the csvlog's log_time.
const csvTimeLayout = "2006-01-02 15:04:05.000 MST"

// pgbenchScript reads a csvlog and returns the statements that database's
// sessions other than skipApp's logged (log_statement) within [from, to]
// (when from is not zero: the request's own time), each with its
// parameters inlined as literals, grouped by session in the order the
// sessions first appear (so that a transaction's statements stay together),
// one per command of a pgbench script; and how many statements that is.
func pgbenchScript(r io.Reader, database, skipApp string, from, to time.Time) (string, int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var order []string
	bySession := map[string][]string{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("reading the csvlog: %w", err)
		}
		if len(rec) <= csvApp || rec[csvDatabase] != database || rec[csvApp] == skipApp || rec[csvSeverity] != "LOG" {
			continue
		}
		if !from.IsZero() {
			at, err := time.Parse(csvTimeLayout, rec[csvTime])
			if err != nil {
				return "", 0, fmt.Errorf("reading the csvlog: log_time %q: %w", rec[csvTime], err)
			}
			if at.Before(from) || at.After(to) {
				continue // the server's background work (the sealer's poll, the mail worker)
			}
		}
		msg := rec[csvMessage]
		var stmt string
		if s, ok := strings.CutPrefix(msg, "statement: "); ok {
			stmt = s
		} else if m := executeLine.FindStringSubmatch(msg); m != nil {
			params, err := parseParameters(rec[csvDetail])
			if err != nil {
				return "", 0, fmt.Errorf("%w, for %.200q", err, m[1])
			}
			if stmt, err = inlineParameters(m[1], params); err != nil {
				return "", 0, err
			}
		} else {
			continue
		}
		stmt = strings.TrimRight(strings.TrimSpace(stmt), "; \n\t")
		if err := pgbenchSafe(stmt); err != nil {
			return "", 0, err
		}
		sess := rec[csvSession]
		if _, ok := bySession[sess]; !ok {
			order = append(order, sess)
		}
		bySession[sess] = append(bySession[sess], stmt)
	}
	var b strings.Builder
	n := 0
	for _, sess := range order {
		for _, st := range bySession[sess] {
			b.WriteString(st)
			b.WriteString(";\n")
			n++
		}
	}
	return b.String(), n, nil
}

// parseParameters parses a csvlog detail "parameters: $1 = 'a”b', $2 = NULL"
// into values by number (nil: NULL). An empty detail is no parameters.
func parseParameters(detail string) (map[int]*string, error) {
	params := map[int]*string{}
	if detail == "" {
		return params, nil
	}
	s, ok := strings.CutPrefix(detail, "parameters: ")
	if !ok {
		return nil, fmt.Errorf("unexpected detail %.100q", detail)
	}
	for len(s) > 0 {
		if s[0] != '$' {
			return nil, fmt.Errorf("parameters: want $N at %.40q", s)
		}
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[1:i])
		if err != nil {
			return nil, fmt.Errorf("parameters: bad number at %.40q", s)
		}
		s, ok = strings.CutPrefix(s[i:], " = ")
		if !ok {
			return nil, fmt.Errorf("parameters: want ' = ' after $%d", n)
		}
		switch {
		case strings.HasPrefix(s, "NULL"):
			params[n] = nil
			s = s[len("NULL"):]
		case strings.HasPrefix(s, "'"):
			var v strings.Builder
			j := 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("parameters: $%d: unterminated quote", n)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						v.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				v.WriteByte(s[j])
				j++
			}
			val := v.String()
			params[n] = &val
			s = s[j+1:]
		default:
			return nil, fmt.Errorf("parameters: $%d: want NULL or a quoted value at %.40q", n, s)
		}
		if s == "" {
			break
		}
		if s, ok = strings.CutPrefix(s, ", "); !ok {
			return nil, fmt.Errorf("parameters: want ', ' after $%d", n)
		}
	}
	return params, nil
}

// inlineParameters replaces each $N of query (outside quoted literals,
// quoted identifiers and comments) with parameter N as a literal: NULL, or a
// quoted string of type unknown, as the parameter was (lib/pq sends them
// untyped, as text).
func inlineParameters(query string, params map[int]*string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(query[i+1 : j])
			v, ok := params[n]
			if !ok {
				return "", fmt.Errorf("statement uses $%d but the log gives no value for it: %.200q", n, query)
			}
			b.WriteString(literal(v))
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// literal is v as an SQL literal: NULL, 'text', or, when the text holds a
// backslash or a colon (pgbench would take ":name" for one of its variables,
// even inside quotes), an escape string with the colon as \072.
func literal(v *string) string {
	if v == nil {
		return "NULL"
	}
	if !strings.ContainsAny(*v, `:\`) {
		return "'" + strings.ReplaceAll(*v, "'", "''") + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, `:`, `\072`)
	return "E'" + r.Replace(*v) + "'"
}

// pgbenchSafe refuses a statement that pgbench would misread: a ":name"
// (other than a "::" cast) is one of its variables, and a line starting with
// a backslash one of its meta-commands.
func pgbenchSafe(stmt string) error {
	for i := 0; i < len(stmt); i++ {
		if stmt[i] != ':' {
			continue
		}
		j := i
		for j < len(stmt) && stmt[j] == ':' {
			j++
		}
		if j == i+1 && j < len(stmt) && isVarChar(stmt[j]) {
			return fmt.Errorf("statement has %q, which pgbench would take for a variable: %.200q", stmt[i:min(j+8, len(stmt))], stmt)
		}
		i = j - 1
	}
	for _, l := range strings.Split(stmt, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), `\`) {
			return fmt.Errorf("statement has a line starting with a backslash, a pgbench meta-command: %.200q", stmt)
		}
	}
	return nil
}

func isVarChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// captureStatements sends one request of the scenario to t with log_statement
// = 'all' on (ALTER SYSTEM, reloaded, reset afterwards) and returns the
// statements t's database logged meanwhile, as a pgbench script. It captures
// three requests and keeps the script that most of them gave (the shortest
// when they all differ), so that a background statement of the server (its
// mail worker, its maintenance) that fell into one window is left out.
func captureStatements(ctx context.Context, o options, t target, s session, body []byte) (string, int, error) {
	if o.PGCSVLog == "" {
		return "", 0, errors.New("no -pg-csvlog")
	}
	dbName, err := databaseName(t.DatabaseURL)
	if err != nil {
		return "", 0, err
	}
	admin, err := sql.Open("postgres", withParam(t.DatabaseURL, "application_name", captureApp))
	if err != nil {
		return "", 0, err
	}
	defer admin.Close()
	setLog := func(ctx context.Context, stmt string) error {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
		_, err := admin.ExecContext(ctx, `SELECT pg_reload_conf()`)
		return err
	}
	if err := setLog(ctx, `ALTER SYSTEM SET log_statement = 'all'`); err != nil {
		return "", 0, err
	}
	defer setLog(context.Background(), `ALTER SYSTEM RESET log_statement`) //nolint:errcheck // best effort; the cluster is thrown away
	// The postmaster signals the backends after it reloaded; each applies the
	// setting before its next command.
	if !sleepCtx(ctx, 300*time.Millisecond) {
		return "", 0, errStopped
	}
	c := &http.Client{Timeout: requestLimit}
	defer c.CloseIdleConnections()
	votes := map[string]int{}
	counts := map[string]int{}
	for range 3 {
		from := settledSize(ctx, o.PGCSVLog)
		// The server's background work logs too (the sealer polls every 50
		// ms): only what was logged while the request ran is its own. The
		// log's times are in milliseconds.
		start := time.Now().Truncate(time.Millisecond).Add(-time.Millisecond)
		b, status, err := send(ctx, c, t.URL+"/query", s.Token, body)
		if err != nil || status != http.StatusOK || strings.Contains(string(b), `"errors":`) {
			return "", 0, fmt.Errorf("the captured request failed: HTTP %d %v %.200s", status, err, b)
		}
		end := time.Now().Add(time.Millisecond)
		to := settledSize(ctx, o.PGCSVLog)
		f, err := os.Open(o.PGCSVLog)
		if err != nil {
			return "", 0, err
		}
		script, n, err := pgbenchScript(io.NewSectionReader(f, from, to-from), dbName, captureApp, start, end)
		f.Close()
		if err != nil {
			return "", 0, err
		}
		votes[script]++
		counts[script] = n
	}
	best := ""
	for script, v := range votes {
		if best == "" || v > votes[best] || v == votes[best] && counts[script] < counts[best] {
			best = script
		}
	}
	if counts[best] == 0 {
		return "", 0, fmt.Errorf("captured no statements of database %s in %s (is the cluster started with logging_collector and csvlog?)", dbName, o.PGCSVLog)
	}
	return best, counts[best], nil
}

// settledSize waits until path has not grown for 100 ms (the log collector
// has written what the backends sent it; at most 1 s, as the server's
// background work may never let it rest) and returns its size.
func settledSize(ctx context.Context, path string) int64 {
	last := fileSize(path)
	for i := 0; i < 10; i++ {
		if !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
		n := fileSize(path)
		if n == last {
			break
		}
		last = n
	}
	return last
}

// ceilingResult is pgbench's run of a captured script.
type ceilingResult struct {
	TPS     float64 `json:"tps"`
	PGCPUms float64 `json:"postgres_cpu_ms_per_tx"`
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// runPgbench runs the script with pgbench, prepared, at conns connections
// for d (whole seconds, at least 1) on t's database, and returns its tps and
// the cluster's CPU time per transaction.
func runPgbench(ctx context.Context, o options, t target, scriptPath string, conns int, d time.Duration) (ceilingResult, error) {
	secs := max(1, int((d+time.Second-1)/time.Second))
	args := []string{"-n", "-M", "prepared", "-f", scriptPath, "-c", strconv.Itoa(conns), "-j", strconv.Itoa(min(2, conns)),
		"-T", strconv.Itoa(secs), t.DatabaseURL}
	cmd := exec.CommandContext(ctx, o.Pgbench, args...)
	meter := cpuMeter{pg: o.PGPID}
	a := meter.read()
	out, err := cmd.CombinedOutput()
	// pgbench's backends exit as it disconnects; their time counts once the
	// postmaster has reaped them.
	sleepCtx(ctx, 500*time.Millisecond)
	b := meter.read()
	if err != nil {
		return ceilingResult{}, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args[:len(args)-1], " "), err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return ceilingResult{}, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	r := ceilingResult{TPS: tps}
	if tx := tps * float64(secs); tx > 0 {
		r.PGCPUms = 1000 * a.to(b).Postgres / tx
	}
	return r, nil
}

// databaseName is the database of a postgres:// URL.
func databaseName(url string) (string, error) {
	rest, ok := strings.CutPrefix(url, "postgres://")
	if !ok {
		rest, ok = strings.CutPrefix(url, "postgresql://")
	}
	_, path, found := strings.Cut(rest, "/")
	name, _, _ := strings.Cut(path, "?")
	if !ok || !found || name == "" {
		return "", fmt.Errorf("cannot tell the database of %q (want postgres://host/name)", url)
	}
	return name, nil
}

func withParam(url, key, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + key + "=" + value
}

// mallocs reads go_memstats_mallocs_total (heap objects allocated since the
// server started) from its Prometheus metrics; false when there are none.
func mallocs(ctx context.Context, url string) (float64, bool) {
	if url == "" {
		return 0, false
	}
	c := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return 0, false
	}
	return metricValue(string(b), "go_memstats_mallocs_total")
}

// metricValue is the value of an unlabelled metric in the Prometheus text format.
func metricValue(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
