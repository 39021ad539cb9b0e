package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The subscriptions scenario (docs/events.md, docs/testing.md "Load test"):
// two server processes on one database (-url and -peer-url), -subscribers
// organizationEvents subscriptions spread over the -order-clients
// organizations of the write scenarios' data set (each organization's clerk
// subscribes, half of its sockets on each process, one subscription per
// socket), while createOrder runs at -event-rate orders a second, through
// both processes in turn, for -duration. It reports the delivery latency of
// every event to every subscriber, from the order's commit (the event's
// occurredAt, the transaction's start by PostgreSQL's clock on this machine:
// an upper bound) and from createOrder's response, whether every subscriber
// got every event of its organization exactly once and in order, the peak RSS
// and CPU per delivered event of both processes, and createOrder's throughput
// (-order-clients clients back to back for -duration) without subscribers,
// with them all connected and receiving, and without them again.

const eventsSubscription = `subscription($o: ID!, $a: String) { organizationEvents(orgId: $o, after: $a, types: ["order.created"]) {
	cursor action occurredAt subject { ... on Order { id number status } } } }`

type subscriptionsReport struct {
	Machine     machine   `json:"machine"`
	Subscribers int       `json:"subscribers"`
	Orgs        int       `json:"organizations"`
	Rate        int       `json:"events_per_second"`
	Duration    string    `json:"duration"`
	Orders      int       `json:"orders_created"`
	Expected    int64     `json:"deliveries_expected"`
	Delivered   int64     `json:"deliveries"`
	Missing     int64     `json:"missing"`
	Duplicates  int64     `json:"duplicates_or_out_of_order"`
	FromCommit  latencies `json:"latency_from_commit"`
	FromAnswer  latencies `json:"latency_from_response"`
	RSSkB       [2]int64  `json:"peak_rss_kb"`
	CPUPerEvent float64   `json:"server_cpu_us_per_delivery"`
	ServerCPU   float64   `json:"server_cpu_s"`
	PGCPU       float64   `json:"postgres_cpu_s"`
	OwnCPU      float64   `json:"generator_cpu_s"`
	Without     float64   `json:"orders_per_s_without"`
	With        float64   `json:"orders_per_s_with"`
	WithoutAgin float64   `json:"orders_per_s_without_again"`
	Ratio       float64   `json:"with_over_without"`
}

func (r *subscriptionsReport) print() {
	fmt.Printf("subscriptions: %d subscribers (one per socket) in %d organizations on 2 server processes, %d orders/s for %s\n",
		r.Subscribers, r.Orgs, r.Rate, r.Duration)
	fmt.Printf("machine: %d CPUs, load average %s at start, %s at end\n\n", r.Machine.CPUs, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	fmt.Printf("orders created %d; deliveries %d of %d expected (missing %d, duplicated or out of order %d)\n",
		r.Orders, r.Delivered, r.Expected, r.Missing, r.Duplicates)
	fmt.Printf("delivery latency from commit (occurredAt): p50 %.1f ms  p99 %.1f ms  max %.1f ms   (goal: p50 < 20 ms, p99 < 100 ms)\n",
		r.FromCommit.P50, r.FromCommit.P99, r.FromCommit.Max)
	fmt.Printf("delivery latency from createOrder's response: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
		r.FromAnswer.P50, r.FromAnswer.P99, r.FromAnswer.Max)
	fmt.Printf("peak RSS: %.0f MB and %.0f MB   (goal: < 150 MB per process); server CPU %.1f s, %.0f µs per delivery (the orders' own work included)\n",
		float64(r.RSSkB[0])/1024, float64(r.RSSkB[1])/1024, r.ServerCPU, r.CPUPerEvent)
	fmt.Printf("CPU over the paced orders: servers %.1f s, PostgreSQL %.1f s, this generator %.1f s (of %s on %d CPUs)\n",
		r.ServerCPU, r.PGCPU, r.OwnCPU, r.Duration, r.Machine.CPUs)
	fmt.Printf("createOrder throughput: %.0f/s without subscribers, %.0f/s with them, %.0f/s without again: %.2fx   (goal: at least 0.90x)\n",
		r.Without, r.With, r.WithoutAgin, r.Ratio)
}

// subscriber is one socket with one subscription.
type subscriber struct {
	conn   *websocket.Conn
	org    int
	mu     sync.Mutex
	seqs   []int64
	commit []time.Duration
	answer []time.Duration
	orders []string
	// paced, pacedAnswers: how many of commit and answer the paced phase filled.
	paced, pacedAnswers int
}

func subscriptionsRun(ctx context.Context, o options) (report, error) {
	if o.PeerURL == "" {
		return nil, fmt.Errorf("-peer-url is required: a second server process on the same database")
	}
	t := o.target()
	if _, err := seed(ctx, o, t); err != nil {
		return nil, err
	}
	s, err := seedOrders(ctx, o, t)
	if err != nil {
		return nil, err
	}
	r := &subscriptionsReport{Machine: thisMachine(), Subscribers: o.Subscribers, Orgs: len(s.Orgs), Rate: o.EventRate, Duration: o.Duration.String()}
	urls := []string{o.URL, o.PeerURL}
	pids := []int{o.ServerPID, o.PeerPID}
	c := &http.Client{Timeout: requestLimit, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	// The orders created while the subscribers listen, by organization.
	var cmu sync.Mutex
	listening := false
	createdIn := make([][]string, len(s.Orgs))
	record := func(k int, id string) {
		cmu.Lock()
		defer cmu.Unlock()
		if listening {
			createdIn[k] = append(createdIn[k], id)
		}
	}
	closedLoop := func() (float64, error) {
		var done atomic.Int64
		lctx, cancel := context.WithTimeout(ctx, o.Duration)
		defer cancel()
		var wg sync.WaitGroup
		for k := range s.Tokens {
			wg.Go(func() {
				for i := 0; lctx.Err() == nil; i++ {
					p := s.Products[k][i%len(s.Products[k])]
					if id, err := createOrder(lctx, c, urls[i%2], s.Tokens[k], s.Orgs[k], s.Customers[k], p); err == nil {
						done.Add(1)
						record(k, id)
					}
				}
			})
		}
		wg.Wait()
		return float64(done.Load()) / o.Duration.Seconds(), ctx.Err()
	}
	if r.Without, err = closedLoop(); err != nil {
		return nil, err
	}

	// The subscribers, each after its organization's newest event.
	cursors := make([]string, len(s.Orgs))
	for k := range s.Orgs {
		if cursors[k], err = eventsCursor(ctx, c, o.URL, s.Tokens[k], s.Orgs[k]); err != nil {
			return nil, err
		}
	}
	subs := make([]*subscriber, o.Subscribers)
	var dialErr error
	var dmu sync.Mutex
	var dwg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range subs {
		k := i % len(s.Orgs)
		sub := &subscriber{org: k}
		subs[i] = sub
		sem <- struct{}{}
		dwg.Go(func() {
			defer func() { <-sem }()
			conn, err := dialSubscription(ctx, urls[(i/len(s.Orgs))%2], s.Tokens[k], s.Orgs[k], cursors[k])
			if err != nil {
				dmu.Lock()
				dialErr = fmt.Errorf("subscriber %d: %w", i, err)
				dmu.Unlock()
				return
			}
			sub.conn = conn
		})
	}
	dwg.Wait()
	defer func() {
		for _, sub := range subs {
			if sub.conn != nil {
				sub.conn.CloseNow() //nolint:errcheck
			}
		}
	}()
	if dialErr != nil {
		return nil, dialErr
	}

	cmu.Lock()
	listening = true
	cmu.Unlock()
	var answered sync.Map // order id -> time of createOrder's response
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var rwg sync.WaitGroup
	for _, sub := range subs {
		rwg.Go(func() { sub.read(rctx, &answered) })
	}

	// 200 orders a second, round robin over the organizations and the two processes.
	for _, pid := range pids {
		resetPeakRSS(pid)
	}
	before := cpuTicks(pids[0], false) + cpuTicks(pids[1], false)
	pgBefore, ownBefore := cpuTicks(o.PGPID, true), cpuTicks(os.Getpid(), false)
	var created, failed atomic.Int64
	var wwg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(o.EventRate))
	end := time.After(o.Duration)
	inflight := make(chan struct{}, 64)
	for i := 0; ; i++ {
		stop := false
		select {
		case <-ctx.Done():
			stop = true
		case <-end:
			stop = true
		case <-tick.C:
		}
		if stop {
			break
		}
		k := i % len(s.Orgs)
		select {
		case inflight <- struct{}{}:
		default:
			failed.Add(1) // the server is behind: a missed tick, not queued
			continue
		}
		wwg.Go(func() {
			defer func() { <-inflight }()
			id, err := createOrder(ctx, c, urls[i%2], s.Tokens[k], s.Orgs[k], s.Customers[k], s.Products[k][i%len(s.Products[k])])
			if err != nil {
				failed.Add(1)
				return
			}
			answered.Store(id, time.Now())
			record(k, id)
			created.Add(1)
		})
	}
	tick.Stop()
	wwg.Wait()
	// Let the last events arrive.
	time.Sleep(2 * time.Second)
	r.ServerCPU = float64(cpuTicks(pids[0], false)+cpuTicks(pids[1], false)-before) / clockTicks
	r.PGCPU = float64(cpuTicks(o.PGPID, true)-pgBefore) / clockTicks
	r.OwnCPU = float64(cpuTicks(os.Getpid(), false)-ownBefore) / clockTicks
	paced := 0
	for _, sub := range subs {
		sub.mu.Lock()
		sub.paced, sub.pacedAnswers = len(sub.commit), len(sub.answer)
		paced += sub.paced
		sub.mu.Unlock()
	}
	for i, pid := range pids {
		r.RSSkB[i] = peakRSSkB(pid)
	}
	r.Orders = int(created.Load())
	if f := failed.Load(); f > 0 {
		fmt.Printf("warning: %d orders at the rate were not created (errors or the server behind)\n", f)
	}

	// With the subscribers connected and receiving: the closed loop again.
	if r.With, err = closedLoop(); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the last events on their way
	cmu.Lock()
	listening = false
	cmu.Unlock()
	stopReading()
	for _, sub := range subs {
		sub.conn.CloseNow() //nolint:errcheck
	}
	rwg.Wait()

	var commits, answers []time.Duration
	for _, sub := range subs {
		commits = append(commits, sub.commit[:sub.paced]...)
		answers = append(answers, sub.answer[:sub.pacedAnswers]...)
		r.Delivered += int64(len(sub.seqs))
		for j := 1; j < len(sub.seqs); j++ {
			if sub.seqs[j] <= sub.seqs[j-1] {
				r.Duplicates++
			}
		}
		got := map[string]int{}
		for _, id := range sub.orders {
			got[id]++
		}
		r.Expected += int64(len(createdIn[sub.org]))
		for _, id := range createdIn[sub.org] {
			if got[id] == 0 {
				r.Missing++
			}
		}
	}
	r.FromCommit, r.FromAnswer = summarize(commits), summarize(answers)
	r.CPUPerEvent = r.ServerCPU / float64(max(1, paced)) * 1e6

	time.Sleep(time.Second)
	if r.WithoutAgin, err = closedLoop(); err != nil {
		return nil, err
	}
	r.Ratio = r.With / ((r.Without + r.WithoutAgin) / 2)
	r.Machine.LoadAvgEnd = loadAvg()
	return r, nil
}

func (sub *subscriber) read(ctx context.Context, answered *sync.Map) {
	for {
		_, b, err := sub.conn.Read(ctx)
		now := time.Now()
		if err != nil {
			return
		}
		var m struct {
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					Ev struct {
						Cursor     string    `json:"cursor"`
						OccurredAt time.Time `json:"occurredAt"`
						Subject    struct {
							ID string `json:"id"`
						} `json:"subject"`
					} `json:"organizationEvents"`
				} `json:"data"`
			} `json:"payload"`
		}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case "ping":
			sub.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`)) //nolint:errcheck
			continue
		case "next":
		default:
			fmt.Printf("subscriber of organization %d: %s\n", sub.org, b)
			continue
		}
		ev := m.Payload.Data.Ev
		sub.mu.Lock()
		sub.seqs = append(sub.seqs, cursorSeq(ev.Cursor))
		sub.orders = append(sub.orders, ev.Subject.ID)
		sub.commit = append(sub.commit, now.Sub(ev.OccurredAt))
		if at, ok := answered.Load(ev.Subject.ID); ok {
			sub.answer = append(sub.answer, max(0, now.Sub(at.(time.Time))))
		}
		sub.mu.Unlock()
	}
}

// cursorSeq reads the chain number in an organizationEvents cursor (this
// harness knows its shape; clients treat it as opaque).
func cursorSeq(c string) int64 {
	b, _ := base64.RawURLEncoding.DecodeString(c)
	n, _ := strconv.ParseInt(strings.TrimPrefix(string(b), "ev1:"), 10, 64)
	return n
}

func dialSubscription(ctx context.Context, base, token, org, after string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, strings.Replace(base, "http", "ws", 1)+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	write := func(v any) error {
		b, _ := json.Marshal(v)
		return conn.Write(dctx, websocket.MessageText, b)
	}
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}}); err != nil {
		return nil, err
	}
	_, b, err := conn.Read(dctx)
	if err != nil || !strings.Contains(string(b), "connection_ack") {
		conn.CloseNow() //nolint:errcheck
		return nil, fmt.Errorf("connection_init: %s %v", b, err)
	}
	if err := write(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": eventsSubscription,
		"variables": map[string]any{"o": org, "a": after}}}); err != nil {
		return nil, err
	}
	return conn, nil
}

func eventsCursor(ctx context.Context, c *http.Client, base, token, org string) (string, error) {
	body, _ := json.Marshal(map[string]any{"query": `query($o: ID!) { organization(orgId: $o) { eventsCursor } }`, "variables": map[string]any{"o": org}})
	b, status, err := send(ctx, c, base+"/query", token, body)
	if err != nil {
		return "", err
	}
	var out struct {
		Data struct {
			Organization struct {
				EventsCursor string `json:"eventsCursor"`
			} `json:"organization"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &out) != nil || out.Data.Organization.EventsCursor == "" {
		return "", fmt.Errorf("eventsCursor: HTTP %d %.300s", status, b)
	}
	return out.Data.Organization.EventsCursor, nil
}

func createOrder(ctx context.Context, c *http.Client, base, token, org, customer, product string) (string, error) {
	b, status, err := send(ctx, c, base+"/query", token, orderBody(org, customer, product))
	if err != nil {
		return "", err
	}
	var out struct {
		Data struct {
			CreateOrder struct {
				ID string `json:"id"`
			} `json:"createOrder"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &out) != nil || out.Data.CreateOrder.ID == "" {
		return "", fmt.Errorf("createOrder: HTTP %d %.300s", status, b)
	}
	return out.Data.CreateOrder.ID, nil
}
