package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

const (
	trivialBody  = `{"query":"{ __typename }"}`
	trivialWant  = `"__typename":"Query"`
	loginMut     = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`
	hashedCode   = "UNAUTHENTICATED" // a wrong password, found wrong by the hasher
	refusedCode  = "RATE_LIMITED"    // refused before hashing (a limiter, or the hasher busy)
	requestLimit = 30 * time.Second
)

// floodReport is the credential-flood scenario's result.
type floodReport struct {
	Scenario string    `json:"scenario"`
	Date     time.Time `json:"date"`
	URL      string    `json:"url"`
	Settings struct {
		Rounds    int    `json:"rounds"`
		Phase     string `json:"phase"`
		Settle    string `json:"settle"`
		Clients   int    `json:"clients"`
		Interval  string `json:"interval"`
		Addresses int    `json:"addresses"` // 0: a new one per login
	} `json:"settings"`
	Machine machine       `json:"machine"`
	Rounds  []floodRound  `json:"rounds"`
	Idle    phaseResult   `json:"idle"`  // all rounds' idle phases together
	Flood   phaseResult   `json:"flood"` // all rounds' flood phases together
	Ratio   float64       `json:"p99_ratio"`
	Goal    float64       `json:"goal_ratio"`
	GoalMet bool          `json:"goal_met"`
	Logins  loginOutcomes `json:"logins"`
}

type floodRound struct {
	Idle  phaseResult `json:"idle"`
	Flood phaseResult `json:"flood"`
	Ratio float64     `json:"p99_ratio"`
}

// phaseResult: the trivial queries sampled in a phase, and the CPU time spent
// while they were.
type phaseResult struct {
	Seconds float64    `json:"seconds"`
	Trivial latencies  `json:"trivial"`
	Failed  int        `json:"trivial_failed"`
	CPU     cpuSeconds `json:"cpu"`
	raw     []time.Duration
}

// samplePhase runs probe one at a time, interval apart, until end, keeping
// the latencies (and failures) of those started after from, and the
// processes' CPU time from from on. The first failure goes to *firstErr and
// to standard error, named what.
func samplePhase(ctx context.Context, meter cpuMeter, interval time.Duration, from, end time.Time,
	probe func() (time.Duration, error), firstErr *error, what string) phaseResult {
	var p phaseResult
	var before cpuSample
	measuring := false
	for {
		now := time.Now()
		if !measuring && !now.Before(from) {
			before, measuring = meter.read(), true
		}
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		d, err := probe()
		if measuring {
			p.raw = append(p.raw, d)
			if err != nil {
				p.Failed++
			}
		}
		if err != nil && *firstErr == nil && ctx.Err() == nil {
			*firstErr = err
			fmt.Fprintf(os.Stderr, "loadtest: %s failed: %v\n", what, err)
		}
		time.Sleep(interval)
	}
	if measuring {
		p.CPU = before.to(meter.read())
		p.Seconds = time.Since(from).Seconds()
	}
	p.Trivial = summarize(append([]time.Duration(nil), p.raw...))
	return p
}

func (p *phaseResult) add(q phaseResult) {
	p.Seconds += q.Seconds
	p.Failed += q.Failed
	p.CPU.add(q.CPU)
	p.raw = append(p.raw, q.raw...)
	p.Trivial = summarize(append([]time.Duration(nil), p.raw...))
}

// loginOutcomes counts the flood's logins by outcome: the error code (or "ok"),
// with its message, or an HTTP or transport failure.
type loginOutcomes struct {
	Sent     int            `json:"sent"`
	Hashed   int            `json:"hashed"`  // UNAUTHENTICATED: the password was checked
	Refused  int            `json:"refused"` // RATE_LIMITED: refused before any hashing
	Outcomes map[string]int `json:"outcomes"`
	Latency  latencies      `json:"latency"`
	mu       sync.Mutex
	raw      []time.Duration
}

func (l *loginOutcomes) record(outcome, code string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Sent++
	l.Outcomes[outcome]++
	switch code {
	case hashedCode:
		l.Hashed++
	case refusedCode:
		l.Refused++
	}
	l.raw = append(l.raw, d)
}

// credentialFlood alternates o.Rounds idle and flood phases. In both, one
// client sends { __typename } every o.Interval on its own kept-alive
// connection; in the flood phase o.Clients others send login with a wrong
// password for a distinct random email, each from a distinct random
// X-Forwarded-For address (the server must trust 127.0.0.1 as a proxy), so
// that the per-address and per-email limits see a botnet and most logins reach
// the hasher (with o.Addresses > 0, from that many addresses only). Each phase samples for o.Phase, o.Settle after the load changed.
func credentialFlood(ctx context.Context, o options) (report, error) {
	r := &floodReport{Scenario: "credential-flood", Date: time.Now().UTC(), URL: o.URL, Machine: thisMachine(), Goal: o.Goal}
	r.Settings.Rounds, r.Settings.Clients, r.Settings.Addresses = o.Rounds, o.Clients, o.Addresses
	addrs := make([]string, o.Addresses)
	for i := range addrs {
		addrs[i] = randomAddr()
	}
	addr := randomAddr
	if len(addrs) > 0 {
		addr = func() string { return addrs[rand.IntN(len(addrs))] }
	}
	r.Settings.Phase, r.Settings.Settle, r.Settings.Interval = o.Phase.String(), o.Settle.String(), o.Interval.String()
	r.Logins.Outcomes = map[string]int{}
	endpoint := o.URL + "/query"
	meter := cpuMeter{server: o.ServerPID, pg: o.PGPID}

	trivial := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	flood := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients, MaxConnsPerHost: o.Clients}}
	body := []byte(trivialBody)
	query := func() (time.Duration, error) {
		start := time.Now()
		b, status, err := post(ctx, trivial, endpoint, body, "")
		d := time.Since(start)
		if err == nil && (status != http.StatusOK || !bytes.Contains(b, []byte(trivialWant))) {
			err = fmt.Errorf("HTTP %d: %.200s", status, b)
		}
		return d, err
	}
	// sample runs trivial queries until end, keeping those started after from.
	var firstErr error
	sample := func(from, end time.Time) phaseResult {
		return samplePhase(ctx, meter, o.Interval, from, end, query, &firstErr, "trivial query")
	}

	// Warm up: open the trivial client's connection and let the server settle.
	if _, err := query(); err != nil {
		return nil, fmt.Errorf("the server does not answer { __typename } at %s: %w", endpoint, err)
	}
	sample(time.Now().Add(time.Hour), time.Now().Add(500*time.Millisecond))

	for round := range o.Rounds {
		var fr floodRound
		start := time.Now().Add(o.Settle)
		fr.Idle = sample(start, start.Add(o.Phase))

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range o.Clients {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					default:
					}
					login(ctx, flood, endpoint, addr(), &r.Logins)
				}
			})
		}
		start = time.Now().Add(o.Settle)
		fr.Flood = sample(start, start.Add(o.Phase))
		close(stop)
		wg.Wait() // every login answered: the next idle phase starts quiet
		if ctx.Err() != nil {
			return nil, errStopped
		}
		fr.Ratio = ratio(fr.Flood.Trivial.P99, fr.Idle.Trivial.P99)
		r.Rounds = append(r.Rounds, fr)
		r.Idle.add(fr.Idle)
		r.Flood.add(fr.Flood)
		fmt.Fprintf(os.Stderr, "loadtest: round %d/%d: idle p99 %.2f ms, flood p99 %.2f ms (%.1fx)\n",
			round+1, o.Rounds, fr.Idle.Trivial.P99, fr.Flood.Trivial.P99, fr.Ratio)
	}
	r.Machine.LoadAvgEnd = loadAvg()
	r.Ratio = ratio(r.Flood.Trivial.P99, r.Idle.Trivial.P99)
	r.GoalMet = r.Ratio > 0 && r.Ratio < o.Goal
	r.Logins.Latency = summarize(r.Logins.raw)
	if r.Idle.Failed+r.Flood.Failed > 0 {
		r.print()
		return nil, fmt.Errorf("%d trivial queries failed; the first: %v", r.Idle.Failed+r.Flood.Failed, firstErr)
	}
	return r, nil
}

// login sends one wrong-password login for a random email from address, and
// records its outcome.
func login(ctx context.Context, c *http.Client, endpoint, address string, out *loginOutcomes) {
	body, _ := json.Marshal(map[string]any{"query": loginMut, "variables": map[string]string{
		"e": fmt.Sprintf("flood-%016x@example.test", rand.Uint64()),
		"p": fmt.Sprintf("wrong-%016x", rand.Uint64()),
	}})
	start := time.Now()
	b, status, err := post(ctx, c, endpoint, body, address)
	d := time.Since(start)
	if err != nil {
		if ctx.Err() == nil {
			out.record("transport error: "+err.Error(), "", d)
		}
		return
	}
	var resp struct {
		Data   map[string]any `json:"data"`
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	switch {
	case json.Unmarshal(b, &resp) != nil:
		out.record(fmt.Sprintf("HTTP %d, not JSON", status), "", d)
	case len(resp.Errors) > 0:
		e := resp.Errors[0]
		out.record(fmt.Sprintf("%s (%q)", e.Extensions.Code, e.Message), e.Extensions.Code, d)
	case resp.Data["login"] != nil:
		out.record("ok", "", d)
	default:
		out.record(fmt.Sprintf("HTTP %d, no data and no error", status), "", d)
	}
}

// randomAddr is a random public-looking IPv4 address (not loopback, the
// trusted proxy): a botnet's.
func randomAddr() string {
	for {
		v := rand.Uint32()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() {
			return a.String()
		}
	}
}

// post sends body as a GraphQL request and reads the whole answer.
func post(ctx context.Context, c *http.Client, url string, body []byte, forwardedFor string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

func (r *floodReport) print() {
	from := "a new address for each"
	if r.Settings.Addresses > 0 {
		from = fmt.Sprintf("from %d addresses", r.Settings.Addresses)
	}
	fmt.Printf("credential-flood: %d rounds of %s idle and %s flood (%d login clients, distinct emails, %s); { __typename } every %s after each answer; sampling starts %s after the load changes\n",
		r.Settings.Rounds, r.Settings.Phase, r.Settings.Phase, r.Settings.Clients, from, r.Settings.Interval, r.Settings.Settle)
	fmt.Printf("machine: %d CPUs, load average %s at start, %s at end\n\n", r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "round\tphase\tqueries\tfailed\tp50 ms\tp99 ms\tmax ms\tp99 ratio\tserver CPU s\tworkers CPU s\tpostgres CPU s\tloadtest CPU s\tmachine busy s\t")
	row := func(round, phase string, p phaseResult, ratio string) {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", round, phase, p.Trivial.Count, p.Failed,
			p.Trivial.P50, p.Trivial.P99, p.Trivial.Max, ratio, p.CPU.Server, p.CPU.Workers, p.CPU.Postgres, p.CPU.Loadtest, p.CPU.Machine)
	}
	for i, fr := range r.Rounds {
		row(fmt.Sprint(i+1), "idle", fr.Idle, "")
		row(fmt.Sprint(i+1), "flood", fr.Flood, fmt.Sprintf("%.1fx", fr.Ratio))
	}
	row("all", "idle", r.Idle, "")
	row("all", "flood", r.Flood, fmt.Sprintf("%.1fx", r.Ratio))
	w.Flush()
	verdict := "met"
	if !r.GoalMet {
		verdict = "NOT met"
	}
	fmt.Printf("\ntrivial query p99: idle %.2f ms, flood %.2f ms: %.1fx (goal: under %gx): %s\n",
		r.Idle.Trivial.P99, r.Flood.Trivial.P99, r.Ratio, r.Goal, verdict)
	l := &r.Logins
	fmt.Printf("logins: %d sent, %d hashed (%s), %d refused before hashing (%s); latency p50 %.1f ms, p99 %.1f ms\n",
		l.Sent, l.Hashed, hashedCode, l.Refused, refusedCode, l.Latency.P50, l.Latency.P99)
	keys := make([]string, 0, len(l.Outcomes))
	for k := range l.Outcomes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return l.Outcomes[keys[i]] > l.Outcomes[keys[j]] })
	for _, k := range keys {
		fmt.Printf("  %6d  %s\n", l.Outcomes[k], strings.TrimSpace(k))
	}
}
