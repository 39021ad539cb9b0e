package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// A comparison (-base-url): two binaries, each serving its own database of
// the same cluster, both running, loaded one at a time. For each scenario and
// connection count they take turns for o.CmpRounds rounds (base then new,
// then new then base, and so on, so that neither always runs first); each
// column is the median of its rounds, and the ratios are new / base.

type compareReport struct {
	Date     time.Time `json:"date"`
	Machine  machine   `json:"machine"`
	Dataset  dataset   `json:"dataset"`
	Base     string    `json:"base"`
	New      string    `json:"new"`
	Settings struct {
		Rounds   int    `json:"rounds"`
		Duration string `json:"duration"`
		Warmup   string `json:"warmup"`
	} `json:"settings"`
	Rows []compareRow `json:"rows"`
}

type compareRow struct {
	Scenario    string `json:"scenario"`
	Connections int    `json:"connections"`
	Base        side   `json:"base"`
	New         side   `json:"new"`
	Ratios      ratios `json:"ratios_new_over_base"`
}

// side is one binary's rounds at one scenario and connection count.
type side struct {
	Median  summary         `json:"median"`
	Ceiling *ceiling        `json:"ceiling"` // pgbench on this binary's statements, once after the rounds
	Rounds  []throughputRun `json:"rounds"`
}

// summary is the median of each column over the rounds (errors: their sum).
type summary struct {
	ReqPerSec    float64  `json:"req_per_s"`
	P50          float64  `json:"p50_ms"`
	P99          float64  `json:"p99_ms"`
	Errors       int      `json:"errors"`
	ServerCPUms  float64  `json:"server_cpu_ms_per_req"`
	PGCPUms      float64  `json:"postgres_cpu_ms_per_req"`
	AllocsPerReq *float64 `json:"allocs_per_req"` // null when a round had no metrics
	SQLPerReq    float64  `json:"sql_statements_per_req"`
	PeakRSSMB    float64  `json:"server_peak_rss_mb"`
}

// ratios are new / base of the medians (0 where base is 0).
type ratios struct {
	Throughput float64  `json:"throughput"`
	P50        float64  `json:"p50"`
	P99        float64  `json:"p99"`
	ServerCPU  float64  `json:"server_cpu_per_req"`
	PGCPU      float64  `json:"postgres_cpu_per_req"`
	Allocs     *float64 `json:"allocs_per_req"` // null when either side's is n/a
}

// median of xs (the mean of the two middle values for an even count; 0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarizeRounds is the median of each column of runs.
func summarizeRounds(runs []throughputRun) summary {
	col := func(f func(throughputRun) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	s := summary{
		ReqPerSec:   col(func(r throughputRun) float64 { return r.ReqPerSec }),
		P50:         col(func(r throughputRun) float64 { return r.Latency.P50 }),
		P99:         col(func(r throughputRun) float64 { return r.Latency.P99 }),
		ServerCPUms: col(func(r throughputRun) float64 { return r.ServerCPUms }),
		PGCPUms:     col(func(r throughputRun) float64 { return r.PGCPUms }),
		SQLPerReq:   col(func(r throughputRun) float64 { return r.SQLPerReq }),
		PeakRSSMB:   col(func(r throughputRun) float64 { return r.PeakRSSMB }),
	}
	allocs := true
	for _, r := range runs {
		s.Errors += r.Errors
		allocs = allocs && r.AllocsPerReq != nil
	}
	if allocs && len(runs) > 0 {
		v := col(func(r throughputRun) float64 { return *r.AllocsPerReq })
		s.AllocsPerReq = &v
	}
	return s
}

// compare is new / base of each column.
func compare(base, cur summary) ratios {
	r := ratios{Throughput: ratio(cur.ReqPerSec, base.ReqPerSec), P50: ratio(cur.P50, base.P50), P99: ratio(cur.P99, base.P99),
		ServerCPU: ratio(cur.ServerCPUms, base.ServerCPUms), PGCPU: ratio(cur.PGCPUms, base.PGCPUms)}
	if base.AllocsPerReq != nil && cur.AllocsPerReq != nil && *base.AllocsPerReq > 0 {
		v := *cur.AllocsPerReq / *base.AllocsPerReq
		r.Allocs = &v
	}
	return r
}

// compareRuns seeds both databases, then runs each named scenario at each
// connection count, alternating the two binaries.
func compareRuns(names ...string) func(context.Context, options) (report, error) {
	return func(ctx context.Context, o options) (report, error) {
		r := &compareReport{Date: time.Now().UTC(), Machine: thisMachine(), Dataset: o.Dataset, Base: o.BaseName, New: o.NewName}
		r.Settings.Rounds, r.Settings.Duration, r.Settings.Warmup = o.CmpRounds, o.Duration.String(), o.Warmup.String()
		targets := [2]target{o.Base, o.target()}
		var sessions [2]session
		for i, t := range targets {
			s, err := seed(ctx, o, t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, err)
			}
			sessions[i] = s
		}
		fmt.Fprintf(os.Stderr, "loadtest: data set %+v seeded in both databases; %d rounds of %s per binary, scenario and connection count\n", o.Dataset, o.CmpRounds, o.Duration)
		var writes [2]writeRuns
		for _, name := range names {
			if isWrite(name) {
				row, err := compareWrite(ctx, o, targets, &writes, name)
				if errors.Is(err, errNoOrders) {
					fmt.Fprintf(os.Stderr, "loadtest: %s skipped: the base binary predates the orders area\n", name)
					continue
				}
				if err != nil {
					return nil, err
				}
				r.Rows = append(r.Rows, row)
				continue
			}
			sc := findRead(name)
			if sc.needs != nil && (!sc.needs(sessions[0]) || !sc.needs(sessions[1])) {
				fmt.Fprintf(os.Stderr, "loadtest: %s skipped: the base binary predates its business area\n", name)
				continue
			}
			captures := [2]*capture{{}, {}}
			for _, conns := range o.Connections {
				row := compareRow{Scenario: name, Connections: conns}
				sides := [2]*side{&row.Base, &row.New}
				for round := range o.CmpRounds {
					order := []int{0, 1}
					if round%2 == 1 {
						order = []int{1, 0}
					}
					for _, i := range order {
						run, err := runRead(ctx, o, targets[i], sessions[i], sc, conns)
						if err != nil {
							return nil, fmt.Errorf("%s: %w", targets[i].Name, err)
						}
						fmt.Fprintf(os.Stderr, "loadtest: %s at %d connections, round %d/%d, %s: %.0f req/s, p99 %.1f ms, %d errors\n",
							name, conns, round+1, o.CmpRounds, targets[i].Name, run.ReqPerSec, run.Latency.P99, run.Errors)
						sides[i].Rounds = append(sides[i].Rounds, run)
					}
				}
				for i, sd := range sides {
					sd.Median = summarizeRounds(sd.Rounds)
					c, err := captures[i].measure(ctx, o, targets[i], sessions[i], sc, conns, o.Duration, sd.Median.ReqPerSec)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", targets[i].Name, err)
					}
					sd.Ceiling = c
				}
				row.Ratios = compare(row.Base.Median, row.New.Median)
				r.Rows = append(r.Rows, row)
			}
		}
		r.Machine.LoadAvgEnd = loadAvg()
		return r, nil
	}
}

// compareWrite runs a write scenario on both binaries, o.CmpRounds rounds
// each, alternating like the read ones (no ceiling).
func compareWrite(ctx context.Context, o options, targets [2]target, writes *[2]writeRuns, name string) (compareRow, error) {
	row := compareRow{Scenario: name, Connections: o.Dataset.OrderClients}
	sides := [2]*side{&row.Base, &row.New}
	for round := range o.CmpRounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			run, err := writes[i].run(ctx, o, targets[i], name)
			if err != nil {
				return row, fmt.Errorf("%s: %s: %w", targets[i].Name, name, err)
			}
			fmt.Fprintf(os.Stderr, "loadtest: %s with %d clients, round %d/%d, %s: %.0f req/s, p99 %.1f ms, %d errors, %d deadlocks\n",
				name, run.Connections, round+1, o.CmpRounds, targets[i].Name, run.ReqPerSec, run.Latency.P99, run.Errors, *run.Deadlocks)
			sides[i].Rounds = append(sides[i].Rounds, run)
		}
	}
	for _, sd := range sides {
		sd.Median = summarizeRounds(sd.Rounds)
	}
	row.Ratios = compare(row.Base.Median, row.New.Median)
	return row, nil
}

func (r *compareReport) print() {
	fmt.Printf("\ncomparison: base %s, new %s; medians of %d rounds of %s each (after %s of warm-up), alternating; data set %d viewer organizations of %d members, %d others\n",
		r.Base, r.New, r.Settings.Rounds, r.Settings.Duration, r.Settings.Warmup, r.Dataset.ViewerOrgs, r.Dataset.Members, r.Dataset.OtherOrgs)
	fmt.Printf("machine: %d CPUs, load average %s at the start, %s at the end\n\n", r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tconns\tbinary\treq/s\tp50 ms\tp99 ms\terrors\tserver CPU ms/req\tPostgreSQL CPU ms/req\tallocs/req\tSQL/req\tpeak RSS MB\tceiling tps\t% of ceiling\t")
	for _, x := range r.Rows {
		for _, sd := range []struct {
			name string
			s    side
		}{{r.Base, x.Base}, {r.New, x.New}} {
			m := sd.s.Median
			fmt.Fprintf(w, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%s\t%.1f\t%.1f\t%s\t%s\t\n", x.Scenario, x.Connections, sd.name, m.ReqPerSec, m.P50, m.P99,
				m.Errors, m.ServerCPUms, m.PGCPUms, allocsCell(m.AllocsPerReq), m.SQLPerReq, m.PeakRSSMB, ceilingCell(sd.s.Ceiling), pctCell(sd.s.Ceiling))
		}
	}
	w.Flush()
	fmt.Printf("\nnew / base:\n")
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tconns\tthroughput\tp50\tp99\tserver CPU/req\tPostgreSQL CPU/req\tallocs/req\t")
	for _, x := range r.Rows {
		a := x.Ratios
		fmt.Fprintf(w, "%s\t%d\t%.2fx\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n", x.Scenario, x.Connections, a.Throughput, a.P50, a.P99, a.ServerCPU, a.PGCPU, ratioCell(a.Allocs))
	}
	w.Flush()
	var all []throughputRun
	for _, x := range r.Rows {
		for i, c := range []*ceiling{x.Base.Ceiling, x.New.Ceiling} {
			if c != nil {
				all = append(all, throughputRun{Scenario: x.Scenario + " (" + []string{r.Base, r.New}[i] + ")", Ceiling: c})
			}
		}
		for i, sd := range []side{x.Base, x.New} {
			named := make([]throughputRun, len(sd.Rounds))
			for j, run := range sd.Rounds {
				named[j] = run
				named[j].Scenario = fmt.Sprintf("%s (%s, round %d)", x.Scenario, []string{r.Base, r.New}[i], j+1)
			}
			printOutcomes(named)
		}
	}
	printScripts(all)
}

func ratioCell(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", *v)
}

func (r *compareReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | connections | binary | req/s | p50 ms | p99 ms | errors | server CPU ms/req | PostgreSQL CPU ms/req | allocations/req | SQL statements/req | server peak RSS MB | ceiling (pgbench tps) | req/s %% of ceiling |\n")
	fmt.Fprintf(&b, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.Rows {
		for _, sd := range []struct {
			name string
			s    side
		}{{r.Base, x.Base}, {r.New, x.New}} {
			m := sd.s.Median
			fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.2f | %.2f | %d | %.2f | %.2f | %s | %.1f | %.1f | %s | %s |\n", x.Scenario, x.Connections, sd.name, m.ReqPerSec, m.P50, m.P99,
				m.Errors, m.ServerCPUms, m.PGCPUms, allocsCell(m.AllocsPerReq), m.SQLPerReq, m.PeakRSSMB, ceilingCell(sd.s.Ceiling), pctCell(sd.s.Ceiling))
		}
	}
	fmt.Fprintf(&b, "\n| scenario | connections | throughput new/base | p50 new/base | p99 new/base | server CPU/req new/base | PostgreSQL CPU/req new/base | allocations/req new/base |\n")
	fmt.Fprintf(&b, "|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.Rows {
		a := x.Ratios
		fmt.Fprintf(&b, "| %s | %d | %.2f× | %.2f | %.2f | %.2f | %.2f | %s |\n", x.Scenario, x.Connections, a.Throughput, a.P50, a.P99, a.ServerCPU, a.PGCPU, ratioCell(a.Allocs))
	}
	fmt.Fprintf(&b, "\n%s, %d CPUs, load average %s at the start and %s at the end; base %s, new %s, medians of %d alternating rounds of %s (after %s of warm-up) each; data set: %d viewer organizations of %d members, %d others.\n",
		r.Date.Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.Base, r.New, r.Settings.Rounds, r.Settings.Duration, r.Settings.Warmup,
		r.Dataset.ViewerOrgs, r.Dataset.Members, r.Dataset.OtherOrgs)
	return b.String()
}
