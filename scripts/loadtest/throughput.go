package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// readScenario is a request that the viewer sends back to back: its body, and
// a check of a good answer's data.
type readScenario struct {
	name  string
	query string
	vars  func(session) map[string]any
	check func(data json.RawMessage, o options) error
	// needs, when set, says whether a seeded database can serve the scenario
	// (a business area the binary may predate).
	needs func(session) bool
}

const (
	dashboardQuery    = `query { organizations(first:5) { edges { node { id name viewerRole memberCount members(first:10) { edges { node { role user { id email name } } } } } } } }`
	meQuery           = `{ me { id email name } }`
	organizationQuery = `query($o: ID!) { organization(orgId: $o) { id name members(first: 20) { totalCount edges { node { role user { email } } } } } }`
	customersQuery    = `query($o: ID!) { customers(orgId: $o, first: 20) { totalCount edges { node { id name email company tags status assignee { id name } createdBy { id name } } } } }`
)

// readNames are the read scenarios that "all" runs, in order.
var readNames = []string{"dashboard", "me", "organization", "customers"}

var readScenarios = []readScenario{
	{name: "dashboard", query: dashboardQuery, check: checkDashboard},
	{name: "me", query: meQuery, check: func(data json.RawMessage, _ options) error {
		if !strings.Contains(string(data), viewerEmail) {
			return fmt.Errorf("me is not the viewer: %s", data)
		}
		return nil
	}},
	{name: "organization", query: organizationQuery, vars: func(s session) map[string]any { return map[string]any{"o": s.Orgs[0]} },
		check: func(data json.RawMessage, o options) error {
			var out struct {
				Organization struct {
					Members struct {
						TotalCount int `json:"totalCount"`
					} `json:"members"`
				} `json:"organization"`
			}
			if err := json.Unmarshal(data, &out); err != nil || out.Organization.Members.TotalCount != o.Dataset.Members {
				return fmt.Errorf("organization: want %d members: %.300s", o.Dataset.Members, data)
			}
			return nil
		}},
	{name: "customers", query: customersQuery, vars: func(s session) map[string]any { return map[string]any{"o": s.Orgs[0]} },
		needs: func(s session) bool { return s.HasCustomers },
		check: func(data json.RawMessage, o options) error {
			var out struct {
				Customers struct {
					TotalCount int               `json:"totalCount"`
					Edges      []json.RawMessage `json:"edges"`
				} `json:"customers"`
			}
			if err := json.Unmarshal(data, &out); err != nil || out.Customers.TotalCount != o.Dataset.Customers ||
				len(out.Customers.Edges) != min(20, o.Dataset.Customers) {
				return fmt.Errorf("customers: want %d customers, the first %d: %.300s", o.Dataset.Customers, min(20, o.Dataset.Customers), data)
			}
			return nil
		}},
}

func checkDashboard(data json.RawMessage, o options) error {
	var out struct {
		Organizations struct {
			Edges []struct {
				Node struct {
					MemberCount int `json:"memberCount"`
					Members     struct {
						Edges []json.RawMessage `json:"edges"`
					} `json:"members"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"organizations"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return err
	}
	if len(out.Organizations.Edges) != min(5, o.Dataset.ViewerOrgs) {
		return fmt.Errorf("dashboard: %d organizations, want %d: %.300s", len(out.Organizations.Edges), min(5, o.Dataset.ViewerOrgs), data)
	}
	for _, e := range out.Organizations.Edges {
		if e.Node.MemberCount != o.Dataset.Members || len(e.Node.Members.Edges) != min(10, o.Dataset.Members) {
			return fmt.Errorf("dashboard: memberCount %d with %d members, want %d with %d", e.Node.MemberCount, len(e.Node.Members.Edges), o.Dataset.Members, min(10, o.Dataset.Members))
		}
	}
	return nil
}

// throughputReport is the result of the read scenarios: one run per scenario
// and connection count.
type throughputReport struct {
	Date     time.Time `json:"date"`
	URL      string    `json:"url"`
	Machine  machine   `json:"machine"`
	Dataset  dataset   `json:"dataset"`
	Settings struct {
		Duration string `json:"duration"`
		Warmup   string `json:"warmup"`
	} `json:"settings"`
	Runs []throughputRun `json:"runs"`
}

type throughputRun struct {
	Scenario    string  `json:"scenario"`
	Connections int     `json:"connections"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	// ErrorsByCode counts the errors by errorCode; absent without errors.
	ErrorsByCode map[string]int `json:"errors_by_code,omitempty"`
	FirstError   string         `json:"first_error,omitempty"`
	// Deadlocks is the growth of pg_stat_database.deadlocks of the server's
	// database over the run (write scenarios; null for the read ones).
	Deadlocks   *int64     `json:"deadlocks,omitempty"`
	ReqPerSec   float64    `json:"req_per_s"`
	Latency     latencies  `json:"latency"`
	CPU         cpuSeconds `json:"cpu"`
	ServerCPUms float64    `json:"server_cpu_ms_per_req"`
	PGCPUms     float64    `json:"postgres_cpu_ms_per_req"`
	PeakRSSMB   float64    `json:"server_peak_rss_mb"`        // VmHWM; since the run's start when it could be reset, else since the server started
	RSSReset    bool       `json:"server_peak_rss_reset"`     // whether VmHWM was reset at the run's start
	SQLPerReq   float64    `json:"sql_statements_per_req"`    // mean over the access log's lines of the window; 0: no log
	SQLLogged   int        `json:"sql_statements_logged_req"` // how many requests that mean is over
	// Heap objects the server allocated per request (go_memstats_mallocs_total
	// over the counted time); null when the server has no metrics endpoint.
	AllocsPerReq *float64 `json:"allocs_per_req"`
	// pgbench on the statements one request sends; null when not measured.
	Ceiling *ceiling `json:"ceiling"`
}

// ceiling is pgbench's run of the statements one request of the scenario
// sends (captured from the cluster's log), prepared, at the run's connection
// count and for its duration.
type ceiling struct {
	ceilingResult
	Statements int     `json:"statements"` // per pgbench transaction: one request's
	Script     string  `json:"script"`     // the pgbench script, kept beside the JSON
	Pct        float64 `json:"req_per_s_pct_of_ceiling"`
}

// target is one server under load: its address, its process, its database
// and where it logs.
type target struct {
	Name        string // "" alone; base and new in a comparison
	URL         string
	ServerPID   int
	DatabaseURL string
	ServerLog   string
	MetricsURL  string
}

// throughputRuns seeds the data set (when -database-url is given), logs the
// viewer in, and runs each of the named scenarios: a read one at each of
// o.Connections, a write one (orders.go) with its o.Dataset.OrderClients
// clients.
func throughputRuns(names ...string) func(context.Context, options) (report, error) {
	return func(ctx context.Context, o options) (report, error) {
		r := &throughputReport{Date: time.Now().UTC(), URL: o.URL, Machine: thisMachine(), Dataset: o.Dataset}
		r.Settings.Duration, r.Settings.Warmup = o.Duration.String(), o.Warmup.String()
		if o.DatabaseURL == "" {
			return nil, fmt.Errorf("-database-url is required: the scenario seeds its data")
		}
		t0 := time.Now()
		s, err := seed(ctx, o, o.target())
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "loadtest: data set %+v %s in %.1fs; viewer logged in\n", o.Dataset, map[bool]string{true: "seeded", false: "found"}[s.Seeded], time.Since(t0).Seconds())
		t := o.target()
		var writes writeRuns
		for _, name := range names {
			if isWrite(name) {
				run, err := writes.run(ctx, o, t, name)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				fmt.Fprintf(os.Stderr, "loadtest: %s with %d clients: %.0f req/s, p99 %.1f ms, %d errors, %d deadlocks\n", name, run.Connections, run.ReqPerSec, run.Latency.P99, run.Errors, *run.Deadlocks)
				r.Runs = append(r.Runs, run)
				continue
			}
			sc := findRead(name)
			if sc.needs != nil && !sc.needs(s) {
				return nil, fmt.Errorf("%s: the server's database cannot serve it (a binary older than its business area?)", name)
			}
			capt := &capture{}
			for _, conns := range o.Connections {
				run, err := runRead(ctx, o, t, s, sc, conns)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(os.Stderr, "loadtest: %s at %d connections: %.0f req/s, p99 %.1f ms, %d errors\n", name, conns, run.ReqPerSec, run.Latency.P99, run.Errors)
				if run.Ceiling, err = capt.measure(ctx, o, t, s, sc, conns, o.Duration, run.ReqPerSec); err != nil {
					return nil, err
				}
				r.Runs = append(r.Runs, run)
			}
		}
		r.Machine.LoadAvgEnd = loadAvg()
		return r, nil
	}
}

// capture is a scenario's captured statements, captured once per target and
// measured by pgbench at each connection count.
type capture struct {
	script     string // path of the pgbench script; "" until captured
	statements int
}

// measure runs pgbench on the scenario's statements (capturing them first if
// need be) at conns for d; nil without -pgbench.
func (c *capture) measure(ctx context.Context, o options, t target, s session, sc readScenario, conns int, d time.Duration, reqPerSec float64) (*ceiling, error) {
	if o.Pgbench == "" {
		return nil, nil
	}
	if c.script == "" {
		text, n, err := captureStatements(ctx, o, t, s, requestBody(sc, s))
		if err != nil {
			return nil, fmt.Errorf("%s: capturing its statements: %w", sc.name, err)
		}
		c.script = o.ScriptPrefix + "." + sc.name + map[bool]string{true: "", false: "." + t.Name}[t.Name == ""] + ".pgbench.sql"
		if err := os.WriteFile(c.script, []byte(text), 0o644); err != nil {
			return nil, err
		}
		c.statements = n
	}
	res, err := runPgbench(ctx, o, t, c.script, conns, d)
	if err != nil {
		return nil, fmt.Errorf("%s: ceiling: %w", sc.name, err)
	}
	fmt.Fprintf(os.Stderr, "loadtest: %s%s ceiling at %d connections: %.0f tps of %d statements, PostgreSQL CPU %.2f ms per transaction (%s)\n",
		sc.name, map[bool]string{true: "", false: " (" + t.Name + ")"}[t.Name == ""], conns, res.TPS, c.statements, res.PGCPUms, c.script)
	return &ceiling{ceilingResult: res, Statements: c.statements, Script: c.script, Pct: 100 * ratio(reqPerSec, res.TPS)}, nil
}

func requestBody(sc readScenario, s session) []byte {
	var vars map[string]any
	if sc.vars != nil {
		vars = sc.vars(s)
	}
	b, _ := json.Marshal(map[string]any{"query": sc.query, "variables": vars})
	return b
}

func findRead(name string) readScenario {
	for _, sc := range readScenarios {
		if sc.name == name {
			return sc
		}
	}
	panic("no read scenario " + name)
}

// runRead checks one answer, then runs conns kept-alive clients sending the
// scenario's request back to back (runLoad).
func runRead(ctx context.Context, o options, t target, s session, sc readScenario, conns int) (throughputRun, error) {
	run := throughputRun{Scenario: sc.name, Connections: conns}
	var vars map[string]any
	if sc.vars != nil {
		vars = sc.vars(s)
	}
	body := requestBody(sc, s)
	c := &http.Client{Timeout: requestLimit}
	defer c.CloseIdleConnections()
	data, err := gql(ctx, c, t.URL, s.Token, sc.query, vars)
	if err != nil {
		return run, fmt.Errorf("%s: %w", sc.name, err)
	}
	if err := sc.check(data, o); err != nil {
		return run, err
	}
	clients := make([]loadClient, conns)
	for i := range clients {
		clients[i] = loadClient{token: s.Token, bodies: [][]byte{body}}
	}
	err = runLoad(ctx, o, t, &run, clients, nil)
	return run, err
}

// loadClient is one connection of a run: the token it sends and the bodies it
// sends in turn, back to back.
type loadClient struct {
	token  string
	bodies [][]byte
}

// runLoad runs one kept-alive connection per client for o.Warmup (not
// counted) and o.Duration (counted: requests that end within it, the CPU time
// spent within it), and fills run with what it measured. An answer is an error
// unless it is a 200 with data and no errors; errors are counted by code
// (errorCode). around, when set, is called before the warm-up and after the
// clients stopped (the write scenarios read PostgreSQL's deadlock counter).
func runLoad(ctx context.Context, o options, t target, run *throughputRun, clients []loadClient, around func(after bool) error) error {
	conns := len(clients)
	c := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer c.CloseIdleConnections()
	if around != nil {
		if err := around(false); err != nil {
			return err
		}
	}
	var recording atomic.Bool
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			codes, first := map[string]int{}, ""
			for i := 0; wctx.Err() == nil; i++ {
				start := time.Now()
				b, status, err := send(wctx, c, t.URL+"/query", cl.token, cl.bodies[i%len(cl.bodies)])
				d := time.Since(start)
				if !recording.Load() {
					continue
				}
				switch {
				case wctx.Err() != nil:
				case err != nil || status != http.StatusOK || !strings.HasPrefix(string(b), `{"data":`) || strings.Contains(string(b), `"errors":`):
					codes[errorCode(b, status, err)]++
					if first == "" {
						first = fmt.Sprintf("HTTP %d %v %.200s", status, err, b)
					}
				default:
					mine = append(mine, d)
				}
			}
			mu.Lock()
			all = append(all, mine...)
			for code, n := range codes {
				if run.ErrorsByCode == nil {
					run.ErrorsByCode = map[string]int{}
				}
				run.ErrorsByCode[code] += n
				run.Errors += n
			}
			if run.FirstError == "" {
				run.FirstError = first
			}
			mu.Unlock()
		}()
	}
	meter := cpuMeter{server: t.ServerPID, pg: o.PGPID}
	if !sleepCtx(ctx, o.Warmup) {
		stop()
		wg.Wait()
		return errStopped
	}
	run.RSSReset = resetPeakRSS(t.ServerPID)
	logFrom := fileSize(t.ServerLog)
	m0, hasMetrics := mallocs(ctx, t.MetricsURL)
	a, t0 := meter.read(), time.Now()
	recording.Store(true)
	ok := sleepCtx(ctx, o.Duration)
	recording.Store(false)
	b, t1 := meter.read(), time.Now()
	m1, hasMetrics1 := mallocs(ctx, t.MetricsURL)
	logTo := fileSize(t.ServerLog)
	stop()
	wg.Wait()
	if !ok {
		return errStopped
	}
	run.Seconds = t1.Sub(t0).Seconds()
	run.Requests = len(all)
	run.Latency = summarize(all)
	run.ReqPerSec = float64(run.Requests) / run.Seconds
	run.CPU = a.to(b)
	run.ServerCPUms = 1000 * ratio(run.CPU.Server, float64(run.Requests))
	run.PGCPUms = 1000 * ratio(run.CPU.Postgres, float64(run.Requests))
	run.PeakRSSMB = float64(peakRSSkB(t.ServerPID)) / 1024
	run.SQLPerReq, run.SQLLogged = sqlPerRequest(t.ServerLog, logFrom, logTo)
	if hasMetrics && hasMetrics1 && run.Requests > 0 {
		// The requests answered after the counted time (at most one per
		// connection) allocate too: a rounding error at hundreds of requests.
		v := (m1 - m0) / float64(run.Requests)
		run.AllocsPerReq = &v
	}
	if around != nil {
		return around(true)
	}
	return nil
}

// errorCode names a failed answer for the count by code: the first error's
// extensions.code (UNAUTHENTICATED, CONFLICT, ...), else "HTTP <status>",
// "no code" for a GraphQL error without one, or "transport" when no answer came.
func errorCode(b []byte, status int, err error) string {
	if err != nil {
		return "transport"
	}
	var out struct {
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &out) == nil && len(out.Errors) > 0 && out.Errors[0].Extensions.Code != "" {
		return out.Errors[0].Extensions.Code
	}
	if status != http.StatusOK {
		return fmt.Sprintf("HTTP %d", status)
	}
	return "no code"
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// peakRSSkB is VmHWM of /proc/<pid>/status, in kB (0 when unknown).
func peakRSSkB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS sets VmHWM back to the current RSS (writing 5 to clear_refs,
// Linux 4.0 and later; the process must be ours). False when it could not.
func resetPeakRSS(pid int) bool {
	if pid <= 0 {
		return false
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// sqlPerRequest is the mean sql_statements of the access log lines (JSON, msg
// "request", path /query) written between two offsets of the server's log,
// and how many lines it is over. A line cut at either offset is skipped.
func sqlPerRequest(path string, from, to int64) (float64, int) {
	if path == "" || to <= from {
		return 0, 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(io.NewSectionReader(f, from, to-from))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum, n int64
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Path string `json:"path"`
			SQL  *int64 `json:"sql_statements"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "request" || line.Path != "/query" || line.SQL == nil {
			continue
		}
		sum += *line.SQL
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return float64(sum) / float64(n), int(n)
}

func (r *throughputReport) print() {
	fmt.Printf("\nread scenarios: data set %d viewer organizations of %d members, %d others; %s per run after %s of warm-up\n",
		r.Dataset.ViewerOrgs, r.Dataset.Members, r.Dataset.OtherOrgs, r.Settings.Duration, r.Settings.Warmup)
	if hasWrites(r.Runs) {
		fmt.Println(r.Dataset.ordersLine())
	}
	fmt.Printf("machine: %d CPUs, load average %s at the start, %s at the end\n\n", r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tconns\treq/s\tp50 ms\tp99 ms\terrors\tserver CPU ms/req\tPostgreSQL CPU ms/req\tallocs/req\tSQL/req\tpeak RSS MB\tceiling tps\t% of ceiling\t")
	for _, x := range r.Runs {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%s\t%s\t%.1f\t%s\t%s\t\n", x.Scenario, x.Connections, x.ReqPerSec, x.Latency.P50, x.Latency.P99,
			x.Errors, x.ServerCPUms, x.PGCPUms, allocsCell(x.AllocsPerReq), sqlCell(x), x.PeakRSSMB, ceilingCell(x.Ceiling), pctCell(x.Ceiling))
	}
	w.Flush()
	printOutcomes(r.Runs)
	printScripts(r.Runs)
}

// printOutcomes prints each run's errors by code and first error, and the
// write runs' deadlocks.
func printOutcomes(runs []throughputRun) {
	for _, x := range runs {
		if x.Deadlocks != nil || x.Errors > 0 {
			fmt.Printf("%s at %d connections: errors by code: %s%s\n", x.Scenario, x.Connections, codesCell(x.ErrorsByCode), deadlocksCell(x.Deadlocks))
		}
		if x.FirstError != "" {
			fmt.Printf("%s at %d connections, first error: %s\n", x.Scenario, x.Connections, x.FirstError)
		}
	}
}

func hasWrites(runs []throughputRun) bool {
	for _, x := range runs {
		if x.Deadlocks != nil {
			return true
		}
	}
	return false
}

// codesCell is "none", or "CONFLICT 3, transport 1" (most first).
func codesCell(codes map[string]int) string {
	if len(codes) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return codes[keys[i]] > codes[keys[j]] || codes[keys[i]] == codes[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, codes[k])
	}
	return strings.Join(parts, ", ")
}

func deadlocksCell(n *int64) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("; deadlocks (pg_stat_database, warm-up to %s after the run): %d", statsFlush, *n)
}

// printScripts names the captured pgbench scripts, once each.
func printScripts(runs []throughputRun) {
	seen := map[string]bool{}
	for _, x := range runs {
		if x.Ceiling != nil && !seen[x.Ceiling.Script] {
			seen[x.Ceiling.Script] = true
			fmt.Printf("%s: pgbench script %s (%d statements per request)\n", x.Scenario, x.Ceiling.Script, x.Ceiling.Statements)
		}
	}
}

func allocsCell(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'f', 0, 64)
}

func ceilingCell(c *ceiling) string {
	if c == nil {
		return "-"
	}
	return strconv.FormatFloat(c.TPS, 'f', 0, 64)
}

func pctCell(c *ceiling) string {
	if c == nil {
		return "-"
	}
	return strconv.FormatFloat(c.Pct, 'f', 0, 64) + "%"
}

func sqlCell(x throughputRun) string {
	if x.SQLLogged == 0 {
		return "-"
	}
	return strconv.FormatFloat(x.SQLPerReq, 'f', 1, 64)
}

// markdown is the table of print as Markdown.
func (r *throughputReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | connections | req/s | p50 ms | p99 ms | errors | server CPU ms/req | PostgreSQL CPU ms/req | allocations/req | SQL statements/req | server peak RSS MB | ceiling (pgbench tps) | req/s %% of ceiling |\n")
	fmt.Fprintf(&b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %d | %.2f | %.2f | %s | %s | %.1f | %s | %s |\n", x.Scenario, x.Connections, x.ReqPerSec, x.Latency.P50, x.Latency.P99,
			x.Errors, x.ServerCPUms, x.PGCPUms, allocsCell(x.AllocsPerReq), sqlCell(x), x.PeakRSSMB, ceilingCell(x.Ceiling), pctCell(x.Ceiling))
	}
	fmt.Fprintf(&b, "\n%s, %d CPUs, load average %s at the start and %s at the end; data set: %d viewer organizations of %d members, %d others; %s per run after %s of warm-up.\n",
		r.Date.Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd,
		r.Dataset.ViewerOrgs, r.Dataset.Members, r.Dataset.OtherOrgs, r.Settings.Duration, r.Settings.Warmup)
	if hasWrites(r.Runs) {
		fmt.Fprintf(&b, "\n%s.\n", r.Dataset.ordersLine())
		for _, x := range r.Runs {
			if x.Deadlocks != nil {
				fmt.Fprintf(&b, "\n%s: errors by code: %s%s.\n", x.Scenario, codesCell(x.ErrorsByCode), deadlocksCell(x.Deadlocks))
			}
		}
	}
	return b.String()
}
