package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// The fairness scenario (issue 18): organization A (-fair-customers customers,
// -clients members, each a client of its own) sends broad searches with
// totalCount and imports as fast as it can (waiting as an answer's
// Retry-After says, as well-behaved clients do), while one member of organization
// B loads a small dashboard one request at a time. It alternates -rounds
// rounds of a phase with B alone and a phase with A's flood beside it (-phase
// each, sampled -settle after the load changed), and reports B's p50 and p99
// in both and their ratio (goal: B's p99 under the flood within -goal times
// its p99 alone), A's answers by outcome and the CPU time of each process.
// With -base-url it does so for both servers in each round, one after the
// other (the order alternating), each on its own database.

const (
	fairSlugA        = "load-fair-a"
	fairSlugB        = "load-fair-b"
	fairMemberPrefix = "fair-" // fair-a-K@load.test, fair-b-J@load.test
	fairImportRows   = 50      // rows of one import
	fairBMembers     = 10      // B's members besides the viewer of B
	fairBCustomers   = 50
)

const (
	fairDashboard = `query($o: ID!) { organization(orgId: $o) { id name members(first: 10) { totalCount edges { node { role user { email name } } } } }
		customers(orgId: $o, first: 10) { totalCount edges { node { id name status } } } }`
	fairSearch = `query($o: ID!, $s: String!) { customers(orgId: $o, search: $s, first: 20) { totalCount edges { node { id name email company status } } } }`
	fairImport = `mutation($o: ID!, $in: [CreateCustomerInput!]!) { importCustomers(orgId: $o, input: $in) { id } }`
)

// fairSearchTerms are broad: each matches every seeded customer of A (and
// every imported one), so each search counts its capped totalCount (10,000).
var fairSearchTerms = []string{"customer", "load.test", "company", "ustomer 0"}

// fairSession is the scenario's data set as the clients need it.
type fairSession struct {
	OrgA, OrgB string
	TokensA    []string // A's members, one client each (every fourth imports: an ADMIN)
	TokenB     string
	Seeded     bool
}

// seedFairness seeds A and B into t's database unless they are there (the
// read scenarios' seed, which registers the viewer whose password hash every
// account shares, must have run), and logs the members in through the API,
// each from an X-Forwarded-For address of its own.
func seedFairness(ctx context.Context, o options, t target) (fairSession, error) {
	var s fairSession
	db, err := sql.Open("postgres", t.DatabaseURL)
	if err != nil {
		return s, err
	}
	defer db.Close()
	var seeded bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE slug = $1)`, fairSlugA).Scan(&seeded); err != nil {
		return s, err
	}
	if !seeded {
		if err := seedFairnessSQL(ctx, db, o); err != nil {
			return s, err
		}
		s.Seeded = true
	}
	if err := db.QueryRowContext(ctx, `SELECT (SELECT id FROM organizations WHERE slug = $1), (SELECT id FROM organizations WHERE slug = $2)`,
		fairSlugA, fairSlugB).Scan(&s.OrgA, &s.OrgB); err != nil {
		return s, err
	}
	c := &http.Client{Timeout: requestLimit}
	defer c.CloseIdleConnections()
	for k := 1; k <= o.Clients; k++ {
		tok, err := loginFrom(ctx, c, t.URL, fmt.Sprintf("%sa-%d@load.test", fairMemberPrefix, k), seedPassword, fmt.Sprintf("198.51.101.%d", k))
		if err != nil {
			return s, fmt.Errorf("logging A's member %d in: %w", k, err)
		}
		s.TokensA = append(s.TokensA, tok)
	}
	if s.TokenB, err = loginFrom(ctx, c, t.URL, fairMemberPrefix+"b-0@load.test", seedPassword, "198.51.102.1"); err != nil {
		return s, fmt.Errorf("logging B's member in: %w", err)
	}
	return s, nil
}

// seedFairnessSQL inserts, in one transaction: organization A ("Fair Org A")
// with members fair-a-1 (OWNER) ... fair-a-N (every fourth ADMIN, the others
// MEMBER) and -fair-customers customers; organization B ("Fair Org B") with
// fair-b-0 (OWNER, the dashboard's viewer), fairBMembers members and
// fairBCustomers customers.
func seedFairnessSQL(ctx context.Context, db *sql.DB, o options) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	p := seedOrgPrefix + "fair-"
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"the members' accounts", `INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at, updated_at)
			SELECT md5($1 || 'u-' || g || '-' || k)::uuid, $5 || g || '-' || k || '@load.test', 'Fair ' || upper(g) || ' ' || k,
			       v.password_hash, $2::timestamptz, $2::timestamptz, $2::timestamptz
			FROM (SELECT 'a' AS g, k FROM generate_series(1, $3::int) k UNION ALL SELECT 'b', k FROM generate_series(0, $6::int) k) m, users v
			WHERE v.email = $4`, []any{p, seedBase, o.Clients, viewerEmail, fairMemberPrefix, fairBMembers}},
		{"the organizations", `INSERT INTO organizations (id, name, slug, created_at, updated_at)
			SELECT md5($1 || 'o-' || g)::uuid, 'Fair Org ' || upper(g), 'load-fair-' || g, $2::timestamptz, $2::timestamptz
			FROM unnest(ARRAY['a', 'b']) g`, []any{p, seedBase}},
		{"their members", `INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at)
			SELECT md5($1 || 'o-' || g)::uuid, md5($1 || 'u-' || g || '-' || k)::uuid,
			       CASE WHEN (g = 'a' AND k = 1) OR (g = 'b' AND k = 0) THEN 'OWNER' WHEN g = 'a' AND k % 4 = 0 THEN 'ADMIN' ELSE 'MEMBER' END,
			       $2::timestamptz, $2::timestamptz
			FROM (SELECT 'a' AS g, k FROM generate_series(1, $3::int) k UNION ALL SELECT 'b', k FROM generate_series(0, $4::int) k) m`,
			[]any{p, seedBase, o.Clients, fairBMembers}},
		{"their customers", `INSERT INTO customers (organization_id, id, name, email, company, tags, status, created_by, created_at, updated_at)
			SELECT md5($1 || 'o-' || g)::uuid, md5($1 || 'c-' || g || '-' || n)::uuid, 'Customer ' || lpad(n::text, 6, '0'),
			       'customer-' || g || '-' || n || '@load.test', 'Company ' || (n % 50), ARRAY['tag-' || (n % 7)],
			       (ARRAY['LEAD', 'ACTIVE', 'INACTIVE'])[1 + n % 3], md5($1 || 'u-' || g || CASE g WHEN 'a' THEN '-1' ELSE '-0' END)::uuid,
			       $2::timestamptz + n * interval '1 second', $2::timestamptz + n * interval '1 second'
			FROM (SELECT 'a' AS g, n FROM generate_series(1, $3::int) n UNION ALL SELECT 'b', n FROM generate_series(1, $4::int) n) c`,
			[]any{p, seedBase, o.FairCustomers, fairBCustomers}},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seeding %s: %w", st.what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	_, err = db.ExecContext(ctx, `ANALYZE users, organizations, organization_members, customers`)
	return err
}

// fairReport is the fairness scenario's result.
type fairReport struct {
	Scenario string    `json:"scenario"`
	Date     time.Time `json:"date"`
	Settings struct {
		Rounds    int    `json:"rounds"`
		Phase     string `json:"phase"`
		Settle    string `json:"settle"`
		Clients   int    `json:"clients_of_a"`
		Customers int    `json:"customers_of_a"`
		Interval  string `json:"interval"`
	} `json:"settings"`
	Machine machine      `json:"machine"`
	Targets []*fairSide  `json:"targets"` // one, or base and new
	Goal    float64      `json:"goal_ratio"`
	Rounds  []fairRounds `json:"rounds"`
}

// fairSide is one server's figures over all rounds.
type fairSide struct {
	Name    string       `json:"name"`
	URL     string       `json:"url"`
	Alone   phaseResult  `json:"b_alone"`
	Flood   phaseResult  `json:"b_under_flood"`
	Ratio   float64      `json:"p99_ratio"`
	GoalMet bool         `json:"goal_met"`
	A       fairOutcomes `json:"a"`
	s       fairSession
	t       target
}

type fairRounds struct {
	Target string      `json:"target"`
	Alone  phaseResult `json:"b_alone"`
	Flood  phaseResult `json:"b_under_flood"`
	Ratio  float64     `json:"p99_ratio"`
}

// fairOutcomes counts A's answers: searches and imports, by outcome.
type fairOutcomes struct {
	Searches map[string]int `json:"searches"` // "ok" or the error code
	Imports  map[string]int `json:"imports"`
	OK       latencies      `json:"ok_latency"`
	Refused  latencies      `json:"refused_latency"` // RATE_LIMITED answers
	mu       sync.Mutex
	ok, ref  []time.Duration
}

func (f *fairOutcomes) record(search bool, outcome string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.Imports
	if search {
		m = f.Searches
	}
	m[outcome]++
	switch outcome {
	case "ok":
		f.ok = append(f.ok, d)
	case refusedCode:
		f.ref = append(f.ref, d)
	}
}

func fairnessRun(ctx context.Context, o options) (report, error) {
	r := &fairReport{Scenario: "fairness", Date: time.Now().UTC(), Machine: thisMachine(), Goal: 2}
	r.Settings.Rounds, r.Settings.Phase, r.Settings.Settle = o.Rounds, o.Phase.String(), o.Settle.String()
	r.Settings.Clients, r.Settings.Customers, r.Settings.Interval = o.Clients, o.FairCustomers, o.Interval.String()
	if o.DatabaseURL == "" {
		return nil, fmt.Errorf("-database-url is required: the scenario seeds its data")
	}
	targets := []target{o.target()}
	if o.Base.URL != "" {
		targets = []target{o.Base, o.target()}
	}
	for _, t := range targets {
		t0 := time.Now()
		if _, err := seed(ctx, o, t); err != nil {
			return nil, err
		}
		s, err := seedFairness(ctx, o, t)
		if err != nil {
			return nil, err
		}
		name := map[string]string{"": "server", "base": o.BaseName, "new": o.NewName}[t.Name]
		fmt.Fprintf(os.Stderr, "loadtest: %s: A (%d customers, %d members) and B %s in %.1fs; members logged in\n",
			name, o.FairCustomers, o.Clients, map[bool]string{true: "seeded", false: "found"}[s.Seeded], time.Since(t0).Seconds())
		r.Targets = append(r.Targets, &fairSide{Name: name, URL: t.URL, s: s, t: t,
			A: fairOutcomes{Searches: map[string]int{}, Imports: map[string]int{}}})
	}
	meter := func(t target) cpuMeter { return cpuMeter{server: t.ServerPID, pg: o.PGPID} }
	var firstErr error
	for round := range o.Rounds {
		for i := range r.Targets {
			side := r.Targets[(i+round)%len(r.Targets)] // base first, then new first, ...
			fr, err := fairRound(ctx, o, side, meter(side.t), &firstErr)
			if err != nil {
				return nil, err
			}
			r.Rounds = append(r.Rounds, fr)
			side.Alone.add(fr.Alone)
			side.Flood.add(fr.Flood)
			fmt.Fprintf(os.Stderr, "loadtest: round %d/%d, %s: B alone p99 %.2f ms, under A's flood %.2f ms (%.1fx)\n",
				round+1, o.Rounds, side.Name, fr.Alone.Trivial.P99, fr.Flood.Trivial.P99, fr.Ratio)
		}
	}
	r.Machine.LoadAvgEnd = loadAvg()
	failed := 0
	for _, side := range r.Targets {
		side.Ratio = ratio(side.Flood.Trivial.P99, side.Alone.Trivial.P99)
		side.GoalMet = side.Ratio > 0 && side.Ratio <= r.Goal
		side.A.OK, side.A.Refused = summarize(side.A.ok), summarize(side.A.ref)
		failed += side.Alone.Failed + side.Flood.Failed
	}
	if failed > 0 {
		r.print()
		return nil, fmt.Errorf("%d of B's dashboards failed; the first: %v", failed, firstErr)
	}
	return r, nil
}

// fairRound runs one round on one server: B alone, then B beside A's flood.
func fairRound(ctx context.Context, o options, side *fairSide, meter cpuMeter, firstErr *error) (fairRounds, error) {
	endpoint := side.URL + "/query"
	b := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	defer b.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"query": fairDashboard, "variables": map[string]any{"o": side.s.OrgB}})
	dashboard := func() (time.Duration, error) {
		start := time.Now()
		out, status, err := send(ctx, b, endpoint, side.s.TokenB, body)
		d := time.Since(start)
		if err == nil && (status != http.StatusOK || !strings.Contains(string(out), `"totalCount":`) || strings.Contains(string(out), `"errors"`)) {
			err = fmt.Errorf("HTTP %d: %.300s", status, out)
		}
		return d, err
	}
	sample := func(from, end time.Time) phaseResult {
		return samplePhase(ctx, meter, o.Interval, from, end, dashboard, firstErr, "B's dashboard")
	}
	// Warm up B's connection.
	if _, err := dashboard(); err != nil {
		return fairRounds{}, fmt.Errorf("%s: B's dashboard: %w", side.Name, err)
	}
	var fr fairRounds
	fr.Target = side.Name
	start := time.Now().Add(o.Settle)
	fr.Alone = sample(start, start.Add(o.Phase))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	a := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients, MaxConnsPerHost: o.Clients}}
	defer a.CloseIdleConnections()
	for k, tok := range side.s.TokensA {
		imports := (k+1)%4 == 0 // the ADMINs
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				var body []byte
				if imports {
					rows := make([]map[string]any, fairImportRows)
					for i := range rows {
						rows[i] = map[string]any{"name": fmt.Sprintf("Imported %016x", rand.Uint64()), "company": "Imported Co", "tags": []string{"imported"}}
					}
					body, _ = json.Marshal(map[string]any{"query": fairImport, "variables": map[string]any{"o": side.s.OrgA, "in": rows}})
				} else {
					body, _ = json.Marshal(map[string]any{"query": fairSearch, "variables": map[string]any{"o": side.s.OrgA,
						"s": fairSearchTerms[(k+n)%len(fairSearchTerms)]}})
				}
				t0 := time.Now()
				out, status, retry, err := sendRetry(ctx, a, side.URL+"/query", tok, body)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return
				}
				outcome := "ok"
				if err != nil || status != http.StatusOK || strings.Contains(string(out), `"errors"`) {
					outcome = errorCode(out, status, err)
				}
				side.A.record(!imports, outcome, d)
				if retry > 0 { // as a client that honours Retry-After does
					select {
					case <-stop:
						return
					case <-time.After(retry):
					}
				}
			}
		})
	}
	start = time.Now().Add(o.Settle)
	fr.Flood = sample(start, start.Add(o.Phase))
	close(stop)
	wg.Wait() // every request of A answered: the next phase starts quiet
	if ctx.Err() != nil {
		return fr, errStopped
	}
	fr.Ratio = ratio(fr.Flood.Trivial.P99, fr.Alone.Trivial.P99)
	return fr, nil
}

func (r *fairReport) print() {
	fmt.Printf("fairness: %d rounds of %s with B alone and %s beside A's flood (%d members of A: searches, every fourth imports %d rows; A has %d customers); B's dashboard one at a time, %s apart; sampling starts %s after the load changes\n",
		r.Settings.Rounds, r.Settings.Phase, r.Settings.Phase, r.Settings.Clients, fairImportRows, r.Settings.Customers, r.Settings.Interval, r.Settings.Settle)
	fmt.Printf("machine: %d CPUs, load average %s at start, %s at end\n\n", r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "round\tserver\tphase\tdashboards\tfailed\tp50 ms\tp99 ms\tmax ms\tp99 ratio\tserver CPU s\tpostgres CPU s\tloadtest CPU s\tmachine busy s\t")
	row := func(round, name, phase string, p phaseResult, ratio string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", round, name, phase, p.Trivial.Count, p.Failed,
			p.Trivial.P50, p.Trivial.P99, p.Trivial.Max, ratio, p.CPU.Server, p.CPU.Postgres, p.CPU.Loadtest, p.CPU.Machine)
	}
	for i, fr := range r.Rounds {
		n := fmt.Sprint(i/len(r.Targets) + 1)
		row(n, fr.Target, "B alone", fr.Alone, "")
		row(n, fr.Target, "B + flood", fr.Flood, fmt.Sprintf("%.1fx", fr.Ratio))
	}
	for _, s := range r.Targets {
		row("all", s.Name, "B alone", s.Alone, "")
		row("all", s.Name, "B + flood", s.Flood, fmt.Sprintf("%.1fx", s.Ratio))
	}
	w.Flush()
	fmt.Println()
	for _, s := range r.Targets {
		verdict := "met"
		if !s.GoalMet {
			verdict = "NOT met"
		}
		fmt.Printf("%s: B's p99 alone %.2f ms (p50 %.2f), under A's flood %.2f ms (p50 %.2f): %.1fx (goal: at most %gx): %s\n",
			s.Name, s.Alone.Trivial.P99, s.Alone.Trivial.P50, s.Flood.Trivial.P99, s.Flood.Trivial.P50, s.Ratio, r.Goal, verdict)
		fmt.Printf("  A: searches %s; imports %s; answered p50 %.0f ms, p99 %.0f ms; RATE_LIMITED after p50 %.0f ms, p99 %.0f ms\n",
			outcomesCell(s.A.Searches), outcomesCell(s.A.Imports), s.A.OK.P50, s.A.OK.P99, s.A.Refused.P50, s.A.Refused.P99)
	}
}

func outcomesCell(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// sendRetry is send, also returning the answer's Retry-After (0 when none).
func sendRetry(ctx context.Context, c *http.Client, url, token string, body []byte) ([]byte, int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var retry time.Duration
	if n, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && n > 0 {
		retry = time.Duration(n) * time.Second
	}
	return b, resp.StatusCode, retry, err
}
