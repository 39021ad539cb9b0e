// Command loadtest drives a running tenantgraph server over HTTP, from another
// process than the server's, and measures it: latency from the client's side,
// CPU time of the server and of PostgreSQL from /proc. scripts/loadtest.sh
// (make loadtest) builds and starts the server on a throwaway cluster and runs
// it; it can also be pointed at any server:
//
//	go run ./scripts/loadtest -url http://127.0.0.1:8080 -server-pid PID -pg-pid PID -json out.json
//
// Scenarios (-scenario):
//
//	credential-flood  a trivial query's latency idle and while clients send
//	                  wrong-password logins from distinct addresses (issue 7's
//	                  goal: flood p99 under 3x idle p99 on 2 cores)
//	dashboard         the viewer's nested dashboard query (organizations,
//	                  viewerRole, memberCount, members with their users)
//	me                { me { id email name } }
//	organization      organization(orgId) with its first 20 members
//	customers         the first organization's customers list (first 20, with
//	                  totalCount, assignee and createdBy)
//	orders            createOrder (one line, quantity 1) from -order-clients
//	                  clients, each in its own organization
//	orders-hot        the same, every client ordering one product of one
//	                  organization
//	all               dashboard, me, organization, customers, orders and
//	                  orders-hot, in turn
//	subscriptions     organizationEvents subscribers on two server processes
//	                  (-peer-url) while orders are created at -event-rate
//	                  (subscriptions.go)
//	fairness          one member of organization B loads a small dashboard
//	                  alone, then while -clients members of organization A
//	                  (-fair-customers customers) send broad searches and
//	                  imports as fast as they can (issue 18's goal: B's p99
//	                  within 2x of alone; fairness.go)
//
// The read scenarios (dashboard, me, organization, customers) seed their data
// set first (seed.go, straight into PostgreSQL: -database-url; -seed-* for its
// size), log the viewer in through the API, then run -connections kept-alive
// clients that send the same request back to back for -duration, once per
// connection count. The write scenarios (orders.go) seed theirs beside it and
// log their clients in, each with a token of its own. The statements per
// request come from the server's access log (-server-log).
//
// It uses the standard library, lib/pq (for the seed) and coder/websocket (for
// the subscribers) only, and is no part of the server binary.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line's settings, shared by the scenarios.
type options struct {
	URL       string        // server base URL; requests go to URL + "/query"
	ServerPID int           // the server process, for its CPU time (0: not measured)
	PGPID     int           // the PostgreSQL postmaster, for the cluster's CPU time (0: not measured)
	Rounds    int           // idle/flood alternations
	Phase     time.Duration // sampling time of each phase
	Settle    time.Duration // time before each phase's sampling starts, after the load changed
	Clients   int           // flood clients
	Interval  time.Duration // pause between two trivial queries
	Goal      float64       // flood p99 / idle p99 to stay under
	Addresses int           // flood client addresses: 0 one per request, n drawn from n

	DatabaseURL string        // the server's database, for the seed of the read scenarios
	Dataset     dataset       // the seed's size
	Connections []int         // read scenarios: one run per connection count
	Duration    time.Duration // read scenarios: counted time of each run
	Warmup      time.Duration // read scenarios: uncounted time before it
	ServerLog   string        // the server's log (JSON), for the statements per request ("": not reported)
	MetricsURL  string        // the server's Prometheus metrics, for the allocations per request ("": not reported)

	Pgbench      string // pgbench binary, for the ceiling ("": not measured)
	PGCSVLog     string // the cluster's csvlog, where the ceiling's statements are captured from
	ScriptPrefix string // captured pgbench scripts go to PREFIX.SCENARIO[.BINARY].pgbench.sql

	// The subscriptions scenario: a second server process on the same database.
	PeerURL     string
	PeerPID     int
	Subscribers int
	EventRate   int

	FairCustomers int // the fairness scenario: customers of organization A

	Base      target // a comparison's base binary (Base.URL "": no comparison)
	BaseName  string // labels of the two binaries in a comparison
	NewName   string
	CmpRounds int // a comparison's rounds per scenario and connection count
}

// target is the server of -url, -server-pid, -database-url, -server-log and -metrics-url.
func (o options) target() target {
	return target{Name: map[bool]string{true: "", false: "new"}[o.Base.URL == ""], URL: o.URL, ServerPID: o.ServerPID,
		DatabaseURL: o.DatabaseURL, ServerLog: o.ServerLog, MetricsURL: o.MetricsURL}
}

var scenarios = map[string]func(context.Context, options) (report, error){
	"credential-flood": credentialFlood,
	"dashboard":        throughputRuns("dashboard"),
	"me":               throughputRuns("me"),
	"organization":     throughputRuns("organization"),
	"customers":        throughputRuns("customers"),
	"orders":           throughputRuns("orders"),
	"orders-hot":       throughputRuns("orders-hot"),
	"all":              throughputRuns(allNames...),
	"subscriptions":    subscriptionsRun,
	"fairness":         fairnessRun,
}

// allNames are what "all" runs: the read scenarios, then the write ones.
var allNames = append(append([]string(nil), readNames...), writeNames...)

const scenarioNames = "credential-flood, dashboard, me, organization, customers, orders, orders-hot, all, subscriptions, fairness"

// markdowner is a report that can also be a Markdown table.
type markdowner interface {
	markdown() string
}

// report is what a scenario measured: a table for people, JSON for tools.
type report interface {
	print()
}

func main() {
	var o options
	var scenario, jsonPath, mdPath, conns string
	flag.StringVar(&scenario, "scenario", "credential-flood", "scenario to run: "+scenarioNames)
	flag.StringVar(&o.URL, "url", "", "base URL of the server, e.g. http://127.0.0.1:8080 (required)")
	flag.IntVar(&o.ServerPID, "server-pid", 0, "pid of the server process, to report its CPU time (0: not reported)")
	flag.IntVar(&o.PGPID, "pg-pid", 0, "pid of the PostgreSQL postmaster (first line of postmaster.pid), to report the cluster's CPU time (0: not reported)")
	flag.IntVar(&o.Rounds, "rounds", 0, "credential-flood: idle/flood rounds (default 4); a comparison (-base-url): rounds of base and new per scenario and connection count (default 3)")
	flag.DurationVar(&o.Phase, "phase", 2*time.Second, "sampling time of each phase")
	flag.DurationVar(&o.Settle, "settle", 300*time.Millisecond, "wait after the load changes before a phase's sampling starts")
	flag.IntVar(&o.Clients, "clients", 16, "concurrent flood clients")
	flag.DurationVar(&o.Interval, "interval", time.Millisecond, "pause between two trivial queries")
	flag.IntVar(&o.Addresses, "addresses", 0, "X-Forwarded-For addresses of the flood: 0 a new one per request (a botnet); n drawn from n fixed ones (1: one attacker, whom the per-address limit soon refuses before any hashing)")
	flag.Float64Var(&o.Goal, "goal", 3, "goal: flood p99 under this many times the idle p99")
	flag.StringVar(&o.DatabaseURL, "database-url", "", "read scenarios: the server's database (postgres://...), where the data set is seeded (required for them)")
	flag.IntVar(&o.Dataset.ViewerOrgs, "seed-viewer-orgs", 5, "read scenarios: organizations the viewer is in")
	flag.IntVar(&o.Dataset.Members, "seed-members", 11, "read scenarios: members of each of the viewer's organizations, the viewer included")
	flag.IntVar(&o.Dataset.OtherOrgs, "seed-other-orgs", 1000, "read scenarios: other organizations, each with its owner")
	flag.IntVar(&o.Dataset.Customers, "seed-customers", 1000, "read scenarios: customers of the viewer's first organization (when the schema has customers)")
	flag.IntVar(&o.Dataset.OrderClients, "order-clients", 16, "orders, orders-hot: concurrent clients, each a member with a token of its own (orders: each in its own organization)")
	flag.IntVar(&o.Dataset.OrderProducts, "seed-order-products", 16, "orders: products of each client's organization, ordered in turn")
	flag.StringVar(&conns, "connections", "16,64", "read scenarios: connection counts, one run each, comma-separated")
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "read scenarios: counted time of each run")
	flag.DurationVar(&o.Warmup, "warmup", 2*time.Second, "read scenarios: uncounted time at the start of each run")
	flag.StringVar(&o.ServerLog, "server-log", "", "read scenarios: the server's log (JSON lines), for the SQL statements per request")
	flag.StringVar(&o.MetricsURL, "metrics-url", "", "read scenarios: the server's Prometheus metrics (http://ADDR/metrics, its METRICS_ADDR), for the allocations per request (\"\": n/a)")
	flag.StringVar(&o.Pgbench, "pgbench", "", "read scenarios: pgbench, to measure the ceiling: the statements of one request, captured from -pg-csvlog, run prepared (\"\": no ceiling)")
	flag.StringVar(&o.PGCSVLog, "pg-csvlog", "", "read scenarios: the cluster's csvlog file (logging_collector on, log_destination csvlog), for the ceiling")
	flag.StringVar(&o.ScriptPrefix, "script-prefix", "", "read scenarios: captured pgbench scripts go to PREFIX.SCENARIO[.base|.new].pgbench.sql (default: beside -json)")
	flag.StringVar(&o.Base.URL, "base-url", "", "compare with a base binary: its base URL (then -url is the new one); both are loaded one at a time, alternating")
	flag.IntVar(&o.Base.ServerPID, "base-server-pid", 0, "comparison: the base server's pid")
	flag.StringVar(&o.Base.DatabaseURL, "base-database-url", "", "comparison: the base server's database (its own, in the same cluster)")
	flag.StringVar(&o.Base.ServerLog, "base-server-log", "", "comparison: the base server's log")
	flag.StringVar(&o.Base.MetricsURL, "base-metrics-url", "", "comparison: the base server's Prometheus metrics (\"\": n/a)")
	flag.StringVar(&o.BaseName, "base-name", "base", "comparison: label of the base binary (e.g. its git ref)")
	flag.StringVar(&o.NewName, "new-name", "new", "comparison: label of the new binary")
	flag.StringVar(&o.PeerURL, "peer-url", "", "subscriptions: base URL of a second server process on the same database")
	flag.IntVar(&o.PeerPID, "peer-pid", 0, "subscriptions: the second server's pid")
	flag.IntVar(&o.Subscribers, "subscribers", 1000, "subscriptions: organizationEvents subscriptions, one per socket, spread over the -order-clients organizations and both processes")
	flag.IntVar(&o.EventRate, "event-rate", 200, "subscriptions: orders created per second while the subscribers listen")
	flag.IntVar(&o.FairCustomers, "fair-customers", 60_000, "fairness: customers of organization A, whose -clients members flood it")
	flag.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&mdPath, "markdown", "", "also write the results as a Markdown table to this file (read scenarios)")
	flag.Parse()
	durationSet := false
	flag.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if o.Base.URL != "" {
		o.Base.Name = "base"
		o.CmpRounds = cmp.Or(o.Rounds, 3)
		if !durationSet {
			o.Duration = 5 * time.Second
		}
		if _, ok := scenarios[scenario]; ok && scenario != "credential-flood" && scenario != "fairness" { // fairness compares on its own
			names := map[string][]string{"all": allNames}[scenario]
			if names == nil {
				names = []string{scenario}
			}
			scenarios[scenario] = compareRuns(names...)
		}
	}
	o.Rounds = cmp.Or(o.Rounds, 4)
	if o.ScriptPrefix == "" {
		o.ScriptPrefix = strings.TrimSuffix(cmp.Or(jsonPath, "loadtest.json"), ".json")
	}
	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fatalf("-connections: %q is not a positive number", c)
		}
		o.Connections = append(o.Connections, n)
	}
	run, ok := scenarios[scenario]
	switch {
	case !ok:
		fatalf("unknown scenario %q (want one of %s)", scenario, scenarioNames)
	case o.URL == "":
		fatalf("-url is required")
	case o.Rounds < 1 || o.Phase <= 0 || o.Clients < 1 || o.Interval < 0 || o.Settle < 0 || o.Addresses < 0:
		fatalf("-rounds and -clients must be at least 1, -phase positive, -interval, -settle and -addresses not negative")
	case o.Base.URL != "" && (scenario == "credential-flood" || o.Base.DatabaseURL == "" || o.Base.DatabaseURL == o.DatabaseURL):
		fatalf("a comparison (-base-url) runs the read and write scenarios, with -base-database-url a database of its own")
	case o.Pgbench != "" && o.PGCSVLog == "":
		fatalf("-pgbench needs -pg-csvlog (the statements are captured from it)")
	case o.Duration <= 0 || o.Warmup < 0 || o.Dataset.ViewerOrgs < 1 || o.Dataset.Members < 1 || o.Dataset.OtherOrgs < 0 || o.Dataset.Customers < 0:
		fatalf("-duration must be positive, -warmup, -seed-other-orgs and -seed-customers not negative, -seed-viewer-orgs and -seed-members at least 1")
	case o.Dataset.OrderClients < 1 || o.Dataset.OrderClients > 250 || o.Dataset.OrderProducts < 1:
		fatalf("-order-clients must be 1 to 250 (one X-Forwarded-For address each), -seed-order-products at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		fatalf("%s: %v", scenario, err)
	}
	r.print()
	if jsonPath != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			fatalf("encoding JSON: %v", err)
		}
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			fatalf("writing %s: %v", jsonPath, err)
		}
	}
	if m, ok := r.(markdowner); ok && mdPath != "" {
		if err := os.WriteFile(mdPath, []byte(m.markdown()), 0o644); err != nil {
			fatalf("writing %s: %v", mdPath, err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadtest: "+format+"\n", args...)
	os.Exit(1)
}

// cpuMeter reads the CPU time of the server, of its children (the hash
// workers), of the PostgreSQL cluster and of this program.
type cpuMeter struct{ server, pg int }

type cpuSample struct{ server, workers, pg, self, busy int64 }

func (m cpuMeter) read() cpuSample {
	server := cpuTicks(m.server, false)
	return cpuSample{server: server, workers: cpuTicks(m.server, true) - server, pg: cpuTicks(m.pg, true), self: cpuTicks(os.Getpid(), false), busy: machineTicks()}
}

// cpuSeconds is the CPU time spent between two samples, in seconds.
type cpuSeconds struct {
	Server   float64 `json:"server_s"`
	Workers  float64 `json:"hash_workers_s"` // the server's children: its hash workers
	Postgres float64 `json:"postgres_s"`
	Loadtest float64 `json:"loadtest_s"`
	Machine  float64 `json:"machine_busy_s"` // every process of the machine, all CPUs
}

func (a cpuSample) to(b cpuSample) cpuSeconds {
	s := func(t int64) float64 { return float64(t) / clockTicks }
	return cpuSeconds{Server: s(b.server - a.server), Workers: s(b.workers - a.workers), Postgres: s(b.pg - a.pg), Loadtest: s(b.self - a.self),
		Machine: s(b.busy - a.busy)}
}

func (c *cpuSeconds) add(d cpuSeconds) {
	c.Server += d.Server
	c.Workers += d.Workers
	c.Postgres += d.Postgres
	c.Loadtest += d.Loadtest
	c.Machine += d.Machine
}

// latencies summarizes durations in milliseconds.
type latencies struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summarize: nearest-rank percentiles of d (sorted in place).
func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p int) float64 { return ms(d[(len(d)*p+99)/100-1]) }
	return latencies{Count: len(d), P50: pct(50), P99: pct(99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

var errStopped = errors.New("interrupted")

// machine describes where the run happened.
type machine struct {
	CPUs         int    `json:"cpus"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

func thisMachine() machine { return machine{CPUs: runtime.NumCPU(), LoadAvgStart: loadAvg()} }
